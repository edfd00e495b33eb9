//! Command-line arguments, parsed with clap.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand};

/// What the exit status means, shown by `mmblob --help`.
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0  success
  1  error (I/O failure, missing store, refused export keys, ...)
  2  usage error (bad arguments, empty or oversized key)
  3  key not found (get, del)
  4  damage found (verify; get and export of a damaged value; a damaged store header)
  5  store locked by another process that writes to it
  6  not an mmblob store (other file, directory, unsupported format version)
  7  permission denied (read-only store file or directory)"
    };
}

/// Builds an `after_help` text: examples of one command, then the exit codes.
macro_rules! help_with_examples {
    ($($line:literal),+ $(,)?) => {
        concat!("Examples:\n", $("  ", $line, "\n",)+ "\n", "Exit codes: 0 ok, 1 error, 2 usage, 3 key not found, 4 damage found,\n",
            "            5 locked, 6 not a store, 7 permission denied (details: mmblob --help)")
    };
}

/// `mmblob`: a memory-mapped, zero-copy, append-only blob store in one file.
#[derive(Debug, Parser)]
#[command(
    name = "mmblob",
    version,
    about = "A memory-mapped, zero-copy, append-only blob store in one file",
    long_about = "A memory-mapped, zero-copy, append-only blob store in one file.\n\n\
        Values are stored under keys (any bytes; file paths work well) and read back \
        as slices of a memory map. Try `mmblob demo` to see it at work.",
    after_help = concat!(
        "Examples:\n",
        "  mmblob demo                       # a million entries and a 1 GiB value, timed\n",
        "  mmblob put photos/cat.jpg cat.jpg\n",
        "  mmblob get photos/cat.jpg -o copy.jpg\n",
        "  mmblob --store data.mmblob ls --long\n\n",
        exit_codes!(),
    ),
)]
pub struct Args {
    /// Store file [default: $MMBLOB_STORE, else ./store.mmblob]
    #[arg(
        long,
        short = 's',
        global = true,
        env = "MMBLOB_STORE",
        value_name = "PATH"
    )]
    pub store: Option<PathBuf>,
    /// Print JSON (ls, stat, verify, compact, demo, push, pull, follow), with sizes in bytes
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do
    #[command(subcommand)]
    pub command: Command,
}

impl Args {
    /// The store path: `--store`, else `$MMBLOB_STORE`, else `./store.mmblob`.
    pub fn store_path(&self) -> PathBuf {
        self.store
            .clone()
            .unwrap_or_else(|| PathBuf::from("store.mmblob"))
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the store at work: a million entries, a 1 GiB streamed value, reads, verify, compact
    #[command(after_help = help_with_examples!(
        "mmblob demo                          # in a fresh temporary directory",
        "mmblob demo --entries 10000 --size-mb 16",
        "mmblob --json demo > demo.json",
        "RUST_LOG=mmblob=info mmblob demo     # with the library's log events",
    ))]
    Demo(DemoArgs),
    /// Store a value: the bytes of FILE, or of standard input, streamed
    #[command(after_help = help_with_examples!(
        "mmblob put config.toml ./config.toml",
        "tar c photos | mmblob put backups/photos.tar",
        "echo hello | mmblob --store greetings.mmblob put hi",
    ))]
    Put(PutArgs),
    /// Write a value to standard output or to a file, streamed, after checking its checksum
    #[command(after_help = help_with_examples!(
        "mmblob get config.toml",
        "mmblob get backups/photos.tar | tar x",
        "mmblob get photos/cat.jpg -o cat.jpg",
    ))]
    Get(GetArgs),
    /// Delete keys
    #[command(after_help = help_with_examples!(
        "mmblob del old-report.pdf",
        "mmblob del a b c --force            # no error for keys that do not exist",
    ))]
    Del(DelArgs),
    /// List keys, sorted (with --long: size and file offset too)
    #[command(after_help = help_with_examples!(
        "mmblob ls",
        "mmblob ls --prefix photos/ --long",
        "mmblob --json ls | jq '.[] | .size'",
    ))]
    Ls(LsArgs),
    /// Show entries, live and reclaimable bytes, file size, format version, damage
    #[command(after_help = help_with_examples!("mmblob stat", "mmblob --json stat"))]
    Stat,
    /// Check the checksum of every entry; exit status 4 if any is damaged
    #[command(after_help = help_with_examples!(
        "mmblob verify",
        "mmblob verify && echo intact",
        "mmblob --json verify",
    ))]
    Verify,
    /// Rewrite the live entries into a new file, giving back overwritten and deleted space
    #[command(after_help = help_with_examples!("mmblob compact", "mmblob --json compact"))]
    Compact,
    /// Store every file under DIR, keyed by its path relative to DIR
    #[command(after_help = help_with_examples!(
        "mmblob import ./assets             # assets/img/a.png becomes key img/a.png",
        "mmblob --store site.mmblob import public",
    ))]
    Import(ImportArgs),
    /// Write every value to a file under DIR named by its key (the reverse of import); damaged values are skipped
    #[command(after_help = help_with_examples!(
        "mmblob export ./restored",
        "mmblob export ./photos --prefix photos/",
    ))]
    Export(ExportArgs),
    /// Upload the bytes written since the last push to an object store (S3, a cluster, a directory)
    #[command(after_help = help_with_examples!(
        "mmblob push s3://my-bucket/stores/photos",
        "mmblob --store data.mmblob --json push file:///mnt/backup/data",
        "AWS_ENDPOINT_URL=http://127.0.0.1:3900 AWS_ALLOW_HTTP=true mmblob push s3://b/p",
    ))]
    Push(crate::cli::commands::push::PushArgs),
    /// Create or update a read-only replica of a pushed store, checking every entry
    #[command(after_help = help_with_examples!(
        "mmblob pull s3://my-bucket/stores/photos photos.mmblob",
        "mmblob --json pull file:///mnt/backup/data data.mmblob",
    ))]
    Pull(crate::cli::commands::pull::PullArgs),
    /// Keep a replica current: pull on an interval until Ctrl-C
    #[command(after_help = help_with_examples!(
        "mmblob follow s3://my-bucket/stores/photos photos.mmblob",
        "mmblob --json follow --interval-ms 200 file:///mnt/backup/data data.mmblob",
    ))]
    Follow(crate::cli::commands::follow::FollowArgs),
}

/// Arguments of `mmblob demo`.
#[derive(Debug, ClapArgs)]
pub struct DemoArgs {
    /// Number of small entries to write (at most 100,000,000)
    #[arg(
        long,
        default_value_t = 1_000_000,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(..=100_000_000)
    )]
    pub entries: u64,
    /// Size of the large streamed value, in MiB
    #[arg(
        long,
        default_value_t = 1024,
        value_name = "MIB",
        value_parser = clap::value_parser!(u64).range(..=1 << 20)
    )]
    pub size_mb: u64,
}

/// Arguments of `mmblob put`.
#[derive(Debug, ClapArgs)]
pub struct PutArgs {
    /// Key to store the value under
    pub key: OsString,
    /// File to read the value from [default: standard input]
    pub file: Option<PathBuf>,
}

/// Arguments of `mmblob get`.
#[derive(Debug, ClapArgs)]
pub struct GetArgs {
    /// Key of the value
    pub key: OsString,
    /// Write the value to this file instead of standard output
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Do not check the value's checksum first (faster; damaged bytes are written as they are)
    #[arg(long)]
    pub no_verify: bool,
}

/// Arguments of `mmblob del`.
#[derive(Debug, ClapArgs)]
pub struct DelArgs {
    /// Keys to delete
    #[arg(required = true)]
    pub keys: Vec<OsString>,
    /// Do not fail when a key does not exist
    #[arg(long, short = 'f')]
    pub force: bool,
}

/// Arguments of `mmblob ls`.
#[derive(Debug, ClapArgs)]
pub struct LsArgs {
    /// Only keys that start with these bytes
    #[arg(long, short = 'p', value_name = "P")]
    pub prefix: Option<OsString>,
    /// Show each value's size and its offset in the store file
    #[arg(long, short = 'l')]
    pub long: bool,
}

/// Arguments of `mmblob import`.
#[derive(Debug, ClapArgs)]
pub struct ImportArgs {
    /// Directory to import
    pub dir: PathBuf,
}

/// Arguments of `mmblob export`.
#[derive(Debug, ClapArgs)]
pub struct ExportArgs {
    /// Directory to write the files into (created if missing)
    pub dir: PathBuf,
    /// Only keys that start with these bytes
    #[arg(long, short = 'p', value_name = "P")]
    pub prefix: Option<OsString>,
}
