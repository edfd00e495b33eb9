//! The store's own files (the store, its index sidecar, a compaction's
//! temporary file), recognised by device and inode, so that no command
//! reads them as input or writes over them as output, whatever name they
//! are reached by (`./store`, a hard link, a symlink).

use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::cli::error::{CliError, Exit};

/// Device and inode of each of the store's files that exists.
#[derive(Debug, Default)]
pub struct OwnFiles {
    files: Vec<(u64, u64, &'static str)>,
}

impl OwnFiles {
    /// The files of the store at `store`, as they are now (a store that
    /// does not exist yet has none).
    pub fn of(store: &Path) -> Self {
        let canonical = store.canonicalize().ok();
        let mut candidates: Vec<(PathBuf, &'static str)> = vec![
            (store.to_path_buf(), "the store file"),
            (with_suffix(store, ".index"), "the store's index sidecar"),
        ];
        if let Some(real) = &canonical {
            candidates.push((with_suffix(real, ".index"), "the store's index sidecar"));
            candidates.push((
                compaction_temp(real),
                "the temporary file of a compaction of the store",
            ));
        }
        let files = candidates
            .into_iter()
            .filter_map(|(path, what)| {
                let meta = std::fs::metadata(path).ok()?;
                meta.is_file().then(|| (meta.dev(), meta.ino(), what))
            })
            .collect();
        OwnFiles { files }
    }

    /// Which of the store's files `meta` describes, if any.
    pub fn which(&self, meta: &Metadata) -> Option<&'static str> {
        self.files
            .iter()
            .find(|(dev, ino, _)| *dev == meta.dev() && *ino == meta.ino())
            .map(|(_, _, what)| *what)
    }

    /// Which of the store's files `path` is (following symlinks), if any.
    pub fn which_path(&self, path: &Path) -> Option<&'static str> {
        std::fs::metadata(path).ok().and_then(|m| self.which(&m))
    }

    /// The usage error for `path` being one of the store's files, `doing`
    /// what the command would have done with it.
    pub fn refusal(path: &Path, what: &str, doing: &str) -> CliError {
        CliError::new(
            Exit::Usage,
            format!(
                "refusing to {doing} {}: it is {what}; nothing was changed",
                path.display()
            ),
        )
    }
}

/// `path` with `suffix` appended to its last component.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Where compaction writes its new file: `.NAME.compacting` beside the store.
pub fn compaction_temp(real_store: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(real_store.file_name().unwrap_or_default());
    name.push(".compacting");
    real_store.with_file_name(name)
}
