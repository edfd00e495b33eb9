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
        as slices of a memory map. Try `mmblob demo` to see it at work.\n\n\
        Keys on the command line: an argument of `0x` followed by an even number of hex \
        digits names the key with those bytes, which is how `ls` shows keys that are not \
        printable text (and keys that themselves look like `0x` and hex digits), so every \
        key `ls` prints can be given back. `--raw-keys` takes key arguments as they are.\n\n\
        Commands that change the store (put, del, import, compact) sync it to stable \
        storage (fdatasync) before they report success; `--no-sync` skips that.",
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
    /// Print a JSON report on standard output, with sizes in bytes (every command;
    /// `get` only with `-o FILE`, since its standard output is the value)
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
    /// Store a value: the bytes of FILE, or of standard input, streamed; synced before it reports success
    #[command(after_help = help_with_examples!(
        "mmblob put config.toml ./config.toml",
        "tar c photos | mmblob put backups/photos.tar",
        "echo hello | mmblob --store greetings.mmblob put hi",
        "mmblob --json put 0x00ff ./two-bytes-key.bin   # key given in hex",
    ))]
    Put(PutArgs),
    /// Write a value to standard output or to a file, streamed, after checking its checksum
    #[command(after_help = help_with_examples!(
        "mmblob get config.toml",
        "mmblob get backups/photos.tar | tar x",
        "mmblob get photos/cat.jpg -o cat.jpg",
        "mmblob get 0xff00 -o value.bin         # a key ls shows in hex",
        "mmblob --json get photos/cat.jpg -o cat.jpg",
    ))]
    Get(GetArgs),
    /// Delete keys; synced before it reports success
    #[command(after_help = help_with_examples!(
        "mmblob del old-report.pdf",
        "mmblob del a b c --force            # no error for keys that do not exist",
        "mmblob del --raw-keys 0xab          # the key spelled 0, x, a, b",
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
    /// Check the checksum of every entry; exit status 4 if any is damaged or bytes were ignored
    #[command(after_help = help_with_examples!(
        "mmblob verify",
        "mmblob verify && echo intact",
        "mmblob --json verify",
    ))]
    Verify,
    /// Rewrite the live entries into a new file, giving back overwritten and deleted space; synced
    #[command(after_help = help_with_examples!(
        "mmblob compact",
        "mmblob --json compact",
        "mmblob compact                     # Ctrl-C stops it at once; the store stays as it was",
    ))]
    Compact(CompactArgs),
    /// Store every file under DIR, keyed by its path relative to DIR; unchanged values are skipped, so an interrupted import can be run again
    #[command(after_help = help_with_examples!(
        "mmblob import ./assets             # assets/img/a.png becomes key img/a.png",
        "mmblob --store site.mmblob import public",
        "mmblob import ./assets --skip-errors   # go on past unreadable files, list them at the end",
    ))]
    Import(ImportArgs),
    /// Write every value to a file under DIR named by its key (the reverse of import); damaged values are skipped
    #[command(after_help = help_with_examples!(
        "mmblob export ./restored",
        "mmblob export ./photos --prefix photos/",
        "mmblob --json export ./restored",
    ))]
    Export(ExportArgs),
    /// Rename a key (atomic; a value under the new key is replaced)
    #[command(after_help = help_with_examples!(
        "mmblob mv draft.txt final.txt",
        "mmblob mv a b --no-clobber          # fail instead of replacing b",
    ))]
    Mv(MvArgs),
    /// Copy a value under a new key, or into another store
    #[command(after_help = help_with_examples!(
        "mmblob cp model.bin model-backup.bin",
        "mmblob cp model.bin --to archive.mmblob",
        "mmblob cp model.bin v1/model.bin --to archive.mmblob",
    ))]
    Cp(CpArgs),
    /// Show a value's size, file offsets, checksum and key hash without reading it
    #[command(after_help = help_with_examples!("mmblob info photos/cat.jpg", "mmblob --json info photos/cat.jpg"))]
    Info(InfoArgs),
    /// Copy the store to DEST while writers go on; later backups append only new bytes
    #[command(after_help = help_with_examples!(
        "mmblob backup /mnt/backups/data.mmblob",
        "mmblob --json backup data.bak | jq '.from, .to'",
    ))]
    Backup(BackupArgs),
    /// Copy every entry that still checks into a new store: the way out of a damaged store
    #[command(
        long_about = "Copy every entry of SRC that still checks into a new store at DEST: the \
            newest intact value of each key (deleted keys stay deleted, batches stay whole). \
            A key whose newest value is damaged is not copied (an older value is not put in \
            its place). Works on a store that cannot be opened, also when its header is \
            damaged. SRC is only read; DEST must not exist or be empty. Lists what was left \
            behind (offsets, and keys where they can be read); exit status 0 when DEST was \
            written.",
        after_help = help_with_examples!(
            "mmblob salvage store.mmblob rescued.mmblob",
            "mmblob --json salvage store.mmblob rescued.mmblob",
            "mmblob salvage store.mmblob rescued.mmblob && mv rescued.mmblob store.mmblob",
        )
    )]
    Salvage(SalvageArgs),
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

/// Arguments of `mmblob salvage`.
#[derive(Debug, ClapArgs)]
pub struct SalvageArgs {
    /// The damaged store file (only read)
    pub src: PathBuf,
    /// Path of the new store (must not exist, or be an empty file)
    pub dest: PathBuf,
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

/// `--no-sync`, shared by the commands that change the store.
#[derive(Debug, Clone, Copy, ClapArgs)]
pub struct SyncArgs {
    /// Return without syncing: by default the command reports success only once what it
    /// wrote is on stable storage (fdatasync), so a power cut right after cannot lose it
    #[arg(long)]
    pub no_sync: bool,
}

/// `--raw-keys`, shared by the commands that take keys.
#[derive(Debug, Clone, ClapArgs)]
pub struct KeyArgs {
    /// Take key arguments as they are, even those that read as `0x` and hex digits
    #[arg(long, visible_alias = "raw-key")]
    pub raw_keys: bool,
    /// Work on the keys of namespace NAME instead of the plain keys
    #[arg(long, value_name = "NAME")]
    pub ns: Option<String>,
}

/// Arguments of `mmblob put`.
#[derive(Debug, ClapArgs)]
pub struct PutArgs {
    /// Key to store the value under (`0x` + hex digits: the key with those bytes)
    pub key: OsString,
    /// File to read the value from [default: standard input]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Arguments of `mmblob get`.
#[derive(Debug, ClapArgs)]
pub struct GetArgs {
    /// Key of the value (`0x` + hex digits: the key with those bytes)
    pub key: OsString,
    /// Write the value to this file instead of standard output (through a temporary file
    /// renamed into place, so a failure leaves an existing FILE as it was)
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Do not check the value's checksum first (faster; damaged bytes are written as they are)
    #[arg(long)]
    pub no_verify: bool,
}

/// Arguments of `mmblob del`.
#[derive(Debug, ClapArgs)]
pub struct DelArgs {
    /// Keys to delete (`0x` + hex digits: the key with those bytes)
    #[arg(required_unless_present = "prefix")]
    pub keys: Vec<OsString>,
    /// Delete every key that starts with P, in one atomic step (with the keys listed too)
    #[arg(long, short = 'p', value_name = "P")]
    pub prefix: Option<OsString>,
    /// Do not fail when a key does not exist
    #[arg(long, short = 'f')]
    pub force: bool,
    #[command(flatten)]
    pub key_args: KeyArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Arguments of `mmblob ls`.
#[derive(Debug, ClapArgs)]
pub struct LsArgs {
    /// Only keys that start with these bytes (`0x` + hex digits: those bytes)
    #[arg(long, short = 'p', value_name = "P")]
    pub prefix: Option<OsString>,
    /// Show each value's size and its offset in the store file
    #[arg(long, short = 'l')]
    pub long: bool,
    /// List the namespaces that hold keys instead of keys
    #[arg(long, conflicts_with_all = ["prefix", "long", "ns"])]
    pub namespaces: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Arguments of `mmblob import`.
#[derive(Debug, ClapArgs)]
pub struct ImportArgs {
    /// Directory to import
    pub dir: PathBuf,
    /// Go on past files that cannot be read, list them at the end and exit with status 1
    /// (what was readable is stored; run the import again once they are fixed)
    #[arg(long)]
    pub skip_errors: bool,
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Arguments of `mmblob compact`.
#[derive(Debug, ClapArgs)]
pub struct CompactArgs {
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Arguments of `mmblob export`.
#[derive(Debug, ClapArgs)]
pub struct ExportArgs {
    /// Directory to write the files into (created if missing)
    pub dir: PathBuf,
    /// Only keys that start with these bytes (`0x` + hex digits: those bytes)
    #[arg(long, short = 'p', value_name = "P")]
    pub prefix: Option<OsString>,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Arguments of `mmblob mv`.
#[derive(Debug, ClapArgs)]
pub struct MvArgs {
    /// Key to move (`0x` + hex digits: the key with those bytes)
    pub old: OsString,
    /// New key
    pub new: OsString,
    /// Fail (and move nothing) when NEW already exists
    #[arg(long, short = 'n')]
    pub no_clobber: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Arguments of `mmblob cp`.
#[derive(Debug, ClapArgs)]
pub struct CpArgs {
    /// Key to copy (`0x` + hex digits: the key with those bytes)
    pub key: OsString,
    /// Key of the copy [default: the same key, with --to]
    pub new: Option<OsString>,
    /// Store to copy into (created if missing) [default: the same store]
    #[arg(long, value_name = "STORE")]
    pub to: Option<PathBuf>,
    /// Fail (and copy nothing) when the destination key already exists
    #[arg(long, short = 'n')]
    pub no_clobber: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
}

/// Arguments of `mmblob info`.
#[derive(Debug, ClapArgs)]
pub struct InfoArgs {
    /// Key of the value (`0x` + hex digits: the key with those bytes)
    pub key: OsString,
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Arguments of `mmblob backup`.
#[derive(Debug, ClapArgs)]
pub struct BackupArgs {
    /// Backup file: created, or an earlier backup of this store to bring up to date
    pub dest: PathBuf,
}
