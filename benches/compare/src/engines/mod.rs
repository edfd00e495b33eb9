//! One small adapter per engine behind a common trait.

use std::io::Read;
use std::path::Path;

use anyhow::{Result, bail};

mod files;
mod heed;
mod mmblob;
mod raw;
mod redb;
mod simd_r_drive;
mod sqlite;

/// The engines under comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Mmblob,
    /// mmblob read through handles (`read`, `iter_entries`, `par_iter_entries`).
    MmblobHandles,
    SimdRDrive,
    Heed,
    Redb,
    Raw,
    /// SQLite BLOBs under an integer key (`INTEGER PRIMARY KEY`), WAL.
    SqliteInt,
    /// The same with `PRAGMA mmap_size` covering the database.
    SqliteIntMmap,
    /// SQLite BLOBs under a text key (`TEXT PRIMARY KEY`), WAL.
    SqliteText,
    /// The same with `PRAGMA mmap_size` covering the database.
    SqliteTextMmap,
    /// One file per value in a directory.
    Files,
}

impl Kind {
    /// Every engine, in the column order of the report.
    pub const ALL: [Kind; 11] = [
        Kind::Mmblob,
        Kind::MmblobHandles,
        Kind::SimdRDrive,
        Kind::Heed,
        Kind::Redb,
        Kind::Raw,
        Kind::SqliteInt,
        Kind::SqliteIntMmap,
        Kind::SqliteText,
        Kind::SqliteTextMmap,
        Kind::Files,
    ];

    /// True for the engines that only run the whole-value workload
    /// (`get10k`): the alternatives people pick instead of a blob store.
    pub fn whole_values_only(self) -> bool {
        matches!(
            self,
            Kind::SqliteInt
                | Kind::SqliteIntMmap
                | Kind::SqliteText
                | Kind::SqliteTextMmap
                | Kind::Files
        )
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mmblob => "mmblob",
            Kind::MmblobHandles => "mmblob-h",
            Kind::SimdRDrive => "simd-r-drive",
            Kind::Heed => "heed",
            Kind::Redb => "redb",
            Kind::Raw => "raw",
            Kind::SqliteInt => "sqlite-int",
            Kind::SqliteIntMmap => "sqlite-int-mmap",
            Kind::SqliteText => "sqlite-text",
            Kind::SqliteTextMmap => "sqlite-text-mmap",
            Kind::Files => "files",
        }
    }

    /// Parses a name given by [`Kind::name`].
    pub fn parse(name: &str) -> Result<Kind> {
        match Kind::ALL.into_iter().find(|k| k.name() == name) {
            Some(k) => Ok(k),
            None => bail!("unknown engine {name:?}"),
        }
    }
}

/// How durable each write call must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The closest each engine has to "every write call hands its bytes to
    /// the OS" (mmblob's default, `Durability::Flush`).
    Flush,
    /// Every write call is on stable storage before it returns.
    Sync,
}

/// What a scan or streamed read saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scan {
    pub entries: u64,
    pub bytes: u64,
    pub fold: u64,
}

impl Scan {
    /// A scan result for one value.
    pub fn one(value: &[u8]) -> Scan {
        Scan {
            entries: 1,
            bytes: value.len() as u64,
            fold: crate::data::touch(value),
        }
    }

    /// Two partial scans combined.
    pub fn merge(self, other: Scan) -> Scan {
        Scan {
            entries: self.entries + other.entries,
            bytes: self.bytes + other.bytes,
            fold: self.fold.wrapping_add(other.fold),
        }
    }
}

/// A store under test. Shared between threads by reference.
pub trait Engine: Send + Sync {
    /// Writes one entry with one call.
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Writes a batch of entries with one call (one transaction).
    fn put_batch(&self, batch: &[(&[u8], &[u8])]) -> Result<()>;
    /// A handle for point reads on the calling thread.
    fn reader(&self) -> Result<Box<dyn Reader + '_>>;
    /// Visits every live value once, sequentially.
    fn scan(&self) -> Result<Scan>;
    /// Visits every live value once in parallel, or `None` if the engine has no parallel iteration.
    fn par_scan(&self) -> Result<Option<Scan>>;
    /// Writes one value of `len` bytes read from `src`, or `None` if the engine cannot.
    fn put_stream(&self, key: &[u8], len: u64, src: &mut dyn Read) -> Result<Option<()>>;
    /// Reads one value back through `buf`-sized reads, or `None` if the engine cannot.
    fn get_stream(&self, key: &[u8], buf: &mut [u8]) -> Result<Option<Scan>>;
    /// Makes everything written so far survive a close and reopen (not timed).
    fn finish(&self) -> Result<()>;
}

/// Point reads on one thread.
pub trait Reader {
    /// Reads the value of `key` (entry number `index`, for engines keyed by
    /// position) and folds every byte of it. Missing keys are an error.
    fn get(&mut self, index: usize, key: &[u8]) -> Result<u64>;

    /// Reads and folds the values of `keys` (entries `indexes`) with the
    /// engine's batch read if it has one, else one `get` after another.
    fn get_many(&mut self, indexes: &[usize], keys: &[&[u8]]) -> Result<u64> {
        let mut acc = 0u64;
        for (&index, key) in indexes.iter().zip(keys) {
            acc = acc.wrapping_add(self.get(index, key)?);
        }
        Ok(acc)
    }
}

/// Opens (creating if needed) the store of `kind` inside directory `dir`.
pub fn open(kind: Kind, dir: &Path, mode: Mode) -> Result<Box<dyn Engine>> {
    Ok(match kind {
        Kind::Mmblob => Box::new(mmblob::Mmblob::open(dir, mode, false)?),
        Kind::MmblobHandles => Box::new(mmblob::Mmblob::open(dir, mode, true)?),
        Kind::SimdRDrive => Box::new(simd_r_drive::SimdRDrive::open(dir)?),
        Kind::Heed => Box::new(heed::Heed::open(dir, mode)?),
        Kind::Redb => Box::new(redb::Redb::open(dir, mode)?),
        Kind::Raw => Box::new(raw::Raw::open(dir, mode)?),
        Kind::SqliteInt => Box::new(sqlite::Sqlite::open(dir, mode, false, false)?),
        Kind::SqliteIntMmap => Box::new(sqlite::Sqlite::open(dir, mode, false, true)?),
        Kind::SqliteText => Box::new(sqlite::Sqlite::open(dir, mode, true, false)?),
        Kind::SqliteTextMmap => Box::new(sqlite::Sqlite::open(dir, mode, true, true)?),
        Kind::Files => Box::new(files::Files::open(dir, mode)?),
    })
}

/// How `kind` in `mode` differs from what the workload asks for, if it does.
pub fn note(kind: Kind, mode: Mode) -> Option<&'static str> {
    match (kind, mode) {
        (Kind::Mmblob | Kind::MmblobHandles | Kind::Raw, _) | (Kind::SimdRDrive, Mode::Flush) => {
            None
        }
        (
            Kind::SqliteInt | Kind::SqliteIntMmap | Kind::SqliteText | Kind::SqliteTextMmap,
            Mode::Flush,
        ) => Some("WAL, synchronous=OFF: each commit writes to the OS without fsync"),
        (
            Kind::SqliteInt | Kind::SqliteIntMmap | Kind::SqliteText | Kind::SqliteTextMmap,
            Mode::Sync,
        ) => Some("WAL, synchronous=FULL"),
        (Kind::Files, Mode::Flush) => Some("one write per file, no fsync"),
        (Kind::Files, Mode::Sync) => Some("write and fsync per file"),
        (Kind::SimdRDrive, Mode::Sync) => {
            Some("no fsync call exists: each write is only flushed to the OS, so it is not durable")
        }
        (Kind::Heed, Mode::Flush) => {
            Some("MDB_NOSYNC: each commit writes its pages to the OS without fsync")
        }
        (Kind::Heed, Mode::Sync) => {
            Some("LMDB's default durable commit, one write transaction per call")
        }
        (Kind::Redb, Mode::Flush) => Some(
            "Durability::None: commits stay in process memory until a durable commit \
             (redb has no flush-to-OS level; Immediate would fsync every call)",
        ),
        (Kind::Redb, Mode::Sync) => Some("Durability::Immediate, one write transaction per call"),
    }
}
