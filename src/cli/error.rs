//! Errors of the command-line tool: one line for people, one exit code for scripts.

use std::io;
use std::path::Path;
use std::process::ExitCode;

use mmblob::{Error, display_key};

/// The one way out of a damaged store, as a command to run.
pub fn salvage_hint(store: &Path) -> String {
    let dest = {
        let mut name = store.as_os_str().to_owned();
        name.push(".salvaged");
        std::path::PathBuf::from(name)
    };
    format!(
        "To copy every intact entry into a new store, run `mmblob salvage {} {}`",
        shell_word(store),
        shell_word(&dest)
    )
}

/// `path` as one word for a POSIX shell: quoted when it needs to be.
fn shell_word(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./+,:@%".contains(c));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The exit statuses documented in `mmblob --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success; used for a reader that went away (`mmblob ls | head`).
    Ok = 0,
    /// Any other failure.
    Failure = 1,
    /// Bad arguments (clap reports its own usage errors with 2 as well).
    Usage = 2,
    /// A key asked for does not exist.
    KeyNotFound = 3,
    /// The store holds damaged data.
    Damage = 4,
    /// Another process holds the store's write lock.
    Locked = 5,
    /// The file is not a store this build can open.
    NotAStore = 6,
    /// The operating system refused access.
    PermissionDenied = 7,
}

/// A failed command: what to tell the user and how to exit.
#[derive(Debug)]
pub struct CliError {
    exit: Exit,
    message: String,
}

/// `Result` of a command.
pub type CliResult<T = ()> = Result<T, CliError>;

impl CliError {
    /// A failure with its exit status and a one-line message.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        CliError {
            exit,
            message: message.into(),
        }
    }

    /// Prints the message (if any) on stderr and returns the exit status.
    pub fn report(&self) -> ExitCode {
        if !self.message.is_empty() {
            eprintln!("error: {}", self.message);
        }
        ExitCode::from(self.exit as u8)
    }

    /// An error of the library while working on the store at `store`.
    pub fn store(store: &Path, err: Error) -> Self {
        let path = store.display();
        match err {
            Error::Locked { .. } => CliError::new(
                Exit::Locked,
                format!(
                    "{path} is locked: another process is writing to it; wait for it to finish \
                     (get, ls, stat, verify and export still work meanwhile)"
                ),
            ),
            Error::NotAStore { reason, .. } => CliError::new(
                Exit::NotAStore,
                format!(
                    "{path} is not an mmblob store ({reason}); it was left unchanged. \
                     Point --store at a store file or at a new path"
                ),
            ),
            Error::NotAFile { .. } => CliError::new(
                Exit::NotAStore,
                format!("{path} is not a regular file; point --store at a store file"),
            ),
            Error::UnsupportedVersion { .. } => CliError::new(Exit::NotAStore, err.to_string()),
            Error::StoreNotFound { .. } => CliError::new(
                Exit::Failure,
                format!(
                    "no store at {path}; create one with `mmblob put KEY FILE` or \
                     `mmblob import DIR`, or choose another with --store or $MMBLOB_STORE"
                ),
            ),
            Error::KeyNotFound { key } => CliError::key_not_found(store, &key),
            Error::InvalidKey { len } => CliError::new(
                Exit::Usage,
                format!("invalid key of {len} bytes: keys must be 1 to 65535 bytes long"),
            ),
            Error::Corrupt { offset: 0, .. } => CliError::new(
                Exit::Damage,
                format!(
                    "{path}: damaged: {err}; the store header is damaged, so the store cannot be \
                     opened (the file was left unchanged). {}",
                    salvage_hint(store)
                ),
            ),
            Error::Corrupt { .. } | Error::ChecksumMismatch { .. } => CliError::new(
                Exit::Damage,
                format!(
                    "{path}: damaged: {err}. `mmblob verify` lists all damage. {}",
                    salvage_hint(store)
                ),
            ),
            Error::ReadOnly { .. } => CliError::permission_denied(store),
            Error::Io { ref source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                CliError::new(
                    Exit::PermissionDenied,
                    format!(
                        "{err}; check the permissions of {path} and of its directory, \
                         or choose another store with --store"
                    ),
                )
            }
            Error::Io { ref source, .. } if source.kind() == io::ErrorKind::NotFound => {
                CliError::new(
                    Exit::Failure,
                    format!("{err}; check that the directory of {path} exists"),
                )
            }
            other => CliError::new(Exit::Failure, other.to_string()),
        }
    }

    /// `key` does not exist in the store at `store`.
    pub fn key_not_found(store: &Path, key: &[u8]) -> Self {
        CliError::new(
            Exit::KeyNotFound,
            format!(
                "key {} not found in {}; list the keys with `mmblob ls`",
                display_key(key),
                store.display()
            ),
        )
    }

    /// The store at `store` cannot be written.
    pub fn permission_denied(store: &Path) -> Self {
        CliError::new(
            Exit::PermissionDenied,
            format!(
                "cannot write to {}: permission denied; make the file and its directory \
                 writable (chmod u+w) or choose another store with --store",
                store.display()
            ),
        )
    }

    /// An I/O error while `doing` something with `path` (a file, not the store).
    pub fn io(doing: &str, path: &Path, err: &io::Error) -> Self {
        let exit = match err.kind() {
            io::ErrorKind::PermissionDenied => Exit::PermissionDenied,
            _ => Exit::Failure,
        };
        CliError::new(exit, format!("{doing} {}: {err}", path.display()))
    }

    /// Writing to standard output failed; a closed pipe ends the command quietly.
    pub fn stdout(err: &io::Error) -> Self {
        if err.kind() == io::ErrorKind::BrokenPipe {
            return CliError::new(Exit::Ok, "");
        }
        CliError::new(Exit::Failure, format!("writing to standard output: {err}"))
    }
}
