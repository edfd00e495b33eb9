//! The store handle and how it is opened.

use std::fs::{File, TryLockError};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use mmblob_entry::Mapping;
use mmblob_entry::format::{HEADER_LEN, Header, HeaderError};
use tracing::{debug, error, info, info_span, warn};

use crate::damage::{Damage, DamageKind, DamagedKeys};
use crate::error::{Error, Result};
use crate::group_commit::GroupCommit;
use crate::index::{Change, Index, shard_of};
use crate::options::OpenOptions;
use crate::recovery::{Ctx, Tail, Walked, key_in, skip_zero_tail, walk};
use crate::snapshot;
use crate::table::Table;

/// Smallest address-space reservation for a map; it grows by doubling.
const MIN_MAP_CAPACITY: u64 = 64 << 20;
/// Marks a tombstone while the index is rebuilt (file offsets stay below 2^63).
const TOMBSTONE_BIT: u64 = 1 << 63;

/// A blob store in one append-only file, read through a shared memory map.
///
/// `DataStore` is `Send + Sync`; share it between threads with `Arc`. Reads
/// take no lock (they wait only while the writer is changing the one index
/// shard they look in) and return zero-copy [`EntryHandle`]s; writes are
/// serialised and append to the end of the file.
///
/// [`EntryHandle`]: mmblob_entry::EntryHandle
pub struct DataStore {
    pub(crate) path: PathBuf,
    pub(crate) options: OpenOptions,
    pub(crate) index: Index,
    pub(crate) state: Mutex<State>,
    /// Shares `fdatasync`s between writers under `Durability::Sync`.
    pub(crate) group_commit: GroupCommit,
    pub(crate) damage: Mutex<Vec<Damage>>,
    /// Keys whose newest entry is known damaged (and hidden from the index).
    pub(crate) damaged_keys: Mutex<DamagedKeys>,
    /// True while `damaged_keys` is not empty: a lookup miss checks it.
    pub(crate) any_damaged_key: AtomicBool,
    /// Mirror of `State::tail` readable without the writer lock.
    pub(crate) tail: AtomicU64,
}

/// Everything the single writer (or a read-only handle's refresh) changes.
pub(crate) struct State {
    pub(crate) file: Arc<File>,
    /// Descriptor holding the exclusive write lock; a separate open file
    /// description from `file`, which the maps keep alive.
    pub(crate) lock: Option<File>,
    pub(crate) map: Arc<Mapping>,
    pub(crate) tail: u64,
    pub(crate) store_id: u64,
    /// A failed append may have left bytes past `tail`: cut them first.
    pub(crate) needs_truncate: bool,
    pub(crate) live: LiveTotals,
    /// Bumped whenever the file is replaced; offsets of different epochs
    /// are not comparable.
    pub(crate) epoch: u64,
    /// The end covered by the index sidecar on disk, if it matches this file.
    pub(crate) snapshot_tail: Option<u64>,
    /// Space reserved after the tail and mapped for writing.
    pub(crate) wmap: crate::write_map::WriteMap,
}

/// Sizes of the live entries, kept up to date by the writer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LiveTotals {
    pub(crate) entries: u64,
    pub(crate) payload_bytes: u64,
    /// Whole entries: padding, payload, key and trailer.
    pub(crate) entry_bytes: u64,
}

/// Keys with the file offset of something about them (their damaged entry).
pub(crate) type KeyOffsets = Vec<(Vec<u8>, u64)>;

/// An index built at open, by a walk or from a sidecar.
struct Built {
    tables: Vec<Table>,
    /// Damage the walk found.
    damage: Vec<Damage>,
    live: LiveTotals,
    /// The end the sidecar covers, when the index came from one.
    covered: Option<u64>,
    /// Keys whose newest entry the walk found damaged.
    damaged_keys: KeyOffsets,
}

/// A store file read from disk and its rebuilt index.
pub(crate) struct Loaded {
    pub(crate) file: File,
    pub(crate) map: Arc<Mapping>,
    pub(crate) tail: u64,
    pub(crate) store_id: u64,
    pub(crate) tables: Vec<Table>,
    pub(crate) damage: Vec<Damage>,
    pub(crate) live: LiveTotals,
    pub(crate) snapshot_tail: Option<u64>,
    /// Keys whose newest entry fails its checksum (hidden), with its offset.
    pub(crate) damaged_keys: KeyOffsets,
    /// Length of the file when it was read; past `tail` lie torn bytes
    /// that a writable open cuts (a strict open only once it passed).
    pub(crate) file_len: u64,
}

impl std::fmt::Debug for DataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataStore")
            .field("path", &self.path)
            .field("read_only", &self.options.read_only)
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

impl DataStore {
    /// Opens the store at `path`, creating it if it is missing or empty.
    ///
    /// # Errors
    /// [`Error::NotAStore`] for a file that is not a store (left unchanged),
    /// [`Error::UnsupportedVersion`], [`Error::Locked`] when another handle
    /// writes to it, [`Error::NotAFile`] for a directory, [`Error::Io`].
    pub fn open(path: impl AsRef<Path>) -> Result<DataStore> {
        OpenOptions::new().open(path)
    }

    /// Opens an existing store; [`Error::StoreNotFound`] if it is missing.
    ///
    /// # Errors
    /// As [`DataStore::open`], plus [`Error::StoreNotFound`].
    pub fn open_existing(path: impl AsRef<Path>) -> Result<DataStore> {
        OpenOptions::new().create(false).open(path)
    }

    pub(crate) fn open_with(path: &Path, options: &OpenOptions) -> Result<DataStore> {
        let _span =
            info_span!("mmblob.open", path = %path.display(), read_only = options.read_only)
                .entered();
        let started = Instant::now();
        let (file, lock) = open_file(path, options)?;
        if lock.is_some() {
            // We hold the write lock, so a leftover is from a compaction that crashed.
            let target = crate::compact::compaction_target(path);
            let _ = std::fs::remove_file(crate::compact::compaction_temp_path(&target));
            // And a sidecar half-written when a process was killed.
            let _ = std::fs::remove_file(snapshot::sidecar_temp_path(&target));
            let _ = std::fs::remove_file(snapshot::sidecar_temp_path(path));
        }
        let loaded = load(path, file, options)?;
        let Loaded {
            file,
            map,
            tail,
            store_id,
            tables,
            damage,
            live,
            snapshot_tail,
            damaged_keys,
            file_len,
        } = loaded;
        let store = DataStore {
            path: path.to_path_buf(),
            options: options.clone(),
            index: Index::new(tables, &map),
            state: Mutex::new(State {
                file: Arc::new(file),
                lock,
                map,
                tail,
                store_id,
                needs_truncate: false,
                live,
                epoch: 0,
                snapshot_tail,
                wmap: crate::write_map::WriteMap::default(),
            }),
            group_commit: GroupCommit::new((0, tail)),
            damage: Mutex::new(Vec::new()),
            damaged_keys: Mutex::new(DamagedKeys::default()),
            any_damaged_key: AtomicBool::new(false),
            tail: AtomicU64::new(tail),
        };
        store.record_damage(damage.clone());
        store.register_damaged_keys(damaged_keys);
        store.hide_damaged(&damage);
        if options.strict {
            store.refuse_damage()?;
            if !options.read_only && file_len > tail {
                store.cut_torn_tail(tail)?;
            }
        }
        info!(
            entries = store.len(),
            bytes = store.tail.load(Ordering::Relaxed),
            elapsed_us = started.elapsed().as_micros() as u64,
            "store opened"
        );
        Ok(store)
    }

    /// The check of `strict(true)`: every checksum, and no damage known.
    /// Bytes of an interrupted write are not damage (they are cut once
    /// the check passed).
    fn refuse_damage(&self) -> Result<()> {
        let report = self.verify()?;
        let damaged: Vec<&Damage> = report.committed_damage().collect();
        match damaged.first() {
            None => Ok(()),
            Some(first) => Err(Error::Corrupt {
                offset: first.range.start,
                reason: format!(
                    "{} damaged stretch(es), first: {first}; opened with strict(true), \
                     which refuses a damaged store and leaves its file unchanged",
                    damaged.len()
                ),
            }),
        }
    }

    /// Cuts the bytes of an interrupted write past `tail` off the file.
    fn cut_torn_tail(&self, tail: u64) -> Result<()> {
        let mut state = self.lock_state();
        state.wmap.forget();
        state
            .file
            .set_len(tail)
            .and_then(|()| state.file.sync_all())
            .map_err(|e| io_err(&self.path, "cutting torn tail of", e))
    }

    /// Makes `loaded` the store's current file, map and index.
    pub(crate) fn install(&self, state: &mut State, loaded: Loaded) {
        self.index.replace(loaded.tables, &loaded.map);
        state.file = Arc::new(loaded.file);
        state.map.retire();
        state.map = loaded.map;
        state.tail = loaded.tail;
        state.store_id = loaded.store_id;
        state.live = loaded.live;
        state.snapshot_tail = loaded.snapshot_tail;
        state.needs_truncate = false;
        state.epoch += 1;
        self.tail.store(loaded.tail, Ordering::Release);
        self.clear_damaged_keys();
        self.register_damaged_keys(loaded.damaged_keys);
        self.hide_damaged_locked(state, &loaded.damage);
        self.record_damage(loaded.damage);
    }

    pub(crate) fn record_damage(&self, found: Vec<Damage>) {
        if found.is_empty() {
            return;
        }
        let mut known = self.damage.lock().unwrap_or_else(PoisonError::into_inner);
        for damage in found {
            if !known.contains(&damage) {
                error!(path = %self.path.display(), %damage, "damaged data in store");
                known.push(damage);
            }
        }
        known.sort_by_key(|d| d.range.start);
    }

    pub(crate) fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn ctx(&self, store_id: u64) -> Ctx {
        Ctx {
            store_id,
            hasher: self.options.hasher,
        }
    }

    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        (self.options.hasher)(key)
    }

    /// The path the store was opened at.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when this handle was opened read-only.
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.options.read_only
    }

    /// The random id of the store file (from its header) and the end of its
    /// last committed entry, read together. [`compact`](Self::compact) writes a
    /// new file with a new id, so a copy of the bytes `..end` under this id is a
    /// prefix of this store exactly while the id stays the same.
    #[must_use]
    pub fn store_id_and_end(&self) -> (u64, u64) {
        let state = self.lock_state();
        (state.store_id, state.tail)
    }

    pub(crate) fn check_writable(&self, operation: &'static str) -> Result<()> {
        if self.options.read_only {
            return Err(Error::ReadOnly {
                path: self.path.clone(),
                operation,
            });
        }
        Ok(())
    }

    /// Makes sure `state.map` reserves at least `end` bytes, re-mapping (and
    /// repointing the index) only when the reservation is exhausted.
    pub(crate) fn reserve_map(&self, state: &mut State, end: u64) -> Result<()> {
        if end <= state.map.capacity() {
            return Ok(());
        }
        let capacity = map_capacity(end);
        // SAFETY: bytes below `state.tail` are committed entries, which mmblob
        // never changes or truncates while the file is mapped.
        let map = unsafe { Mapping::new(&state.file, capacity, state.tail, state.store_id) }
            .map_err(|e| io_err(&self.path, "mapping", e))?;
        let map = Arc::new(map);
        self.index.set_map(&map);
        state.map.retire();
        state.map = map;
        Ok(())
    }
}

pub(crate) fn io_err(path: &Path, doing: &str, source: std::io::Error) -> Error {
    Error::io(format!("{doing} {}", path.display()), source)
}

/// Address space to reserve for a file that must hold `len` bytes.
pub(crate) fn map_capacity(len: u64) -> u64 {
    len.saturating_mul(2)
        .max(MIN_MAP_CAPACITY)
        .next_power_of_two()
}

fn same_file(a: &File, b: &File) -> std::io::Result<bool> {
    let (a, b) = (a.metadata()?, b.metadata()?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

/// Opens the store file (and its lock, when writable).
fn open_file(path: &Path, options: &OpenOptions) -> Result<(File, Option<File>)> {
    // Compaction may rename a new file over the path between our open and our
    // lock; then the lock is on a stale file and we try again.
    let mut created = false;
    for _ in 0..16 {
        // Look before opening: opening a FIFO for reading blocks until some
        // other process opens it for writing, so a read-only open of a named
        // pipe would hang instead of failing with `NotAFile`.
        if std::fs::metadata(path).is_ok_and(|meta| !meta.is_file()) {
            return Err(Error::NotAFile {
                path: path.to_path_buf(),
            });
        }
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(!options.read_only)
            .open(path)
        {
            Ok(file) => file,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && options.create
                    && !options.read_only =>
            {
                if created {
                    // Creating succeeded (or found something at the path) yet
                    // opening still finds nothing: a symlink to a missing file.
                    return Err(Error::io(
                        format!("opening {}", path.display()),
                        std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "the path is a symbolic link to a file that does not exist; \
                             create the target or remove the link",
                        ),
                    ));
                }
                create_store_file(path)?;
                created = true;
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::StoreNotFound {
                    path: path.to_path_buf(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
                return Err(Error::NotAFile {
                    path: path.to_path_buf(),
                });
            }
            Err(e) => return Err(io_err(path, "opening", e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| io_err(path, "reading metadata of", e))?;
        if !meta.is_file() {
            return Err(Error::NotAFile {
                path: path.to_path_buf(),
            });
        }
        if options.read_only {
            return Ok((file, None));
        }
        let lock = File::open(path).map_err(|e| io_err(path, "opening for locking", e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io_err(path, "locking", e)),
        }
        if same_file(&file, &lock).map_err(|e| io_err(path, "checking", e))? {
            return Ok((file, Some(lock)));
        }
    }
    Err(Error::io(
        format!("opening {}", path.display()),
        std::io::Error::other("the file keeps being replaced while opening"),
    ))
}

/// Creates a new store at `path` without ever exposing a partial header:
/// the header is written and synced in a temporary file that is then linked
/// into place (failing harmlessly if someone else created the store first).
fn create_store_file(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.{}.creating", std::process::id()));
    let result = (|| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        file.write_all_at(
            &Header {
                store_id: new_store_id(),
            }
            .encode(),
            0,
        )?;
        file.sync_all()?;
        match std::fs::hard_link(&temp, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        sync_dir(&dir)
    })();
    let _ = std::fs::remove_file(&temp);
    result.map_err(|e| io_err(path, "creating store", e))
}

pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A random 64-bit id. `RandomState` is seeded from the OS random source.
pub(crate) fn new_store_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one((nanos, std::process::id()))
}

fn header_error(path: &Path, err: HeaderError) -> Error {
    let path = path.to_path_buf();
    match err {
        HeaderError::NotMagic => Error::NotAStore {
            path,
            reason: "it does not start with the mmblob magic bytes".into(),
        },
        HeaderError::Truncated(len) => Error::NotAStore {
            path,
            reason: format!("only {len} bytes long, shorter than a store header"),
        },
        HeaderError::Checksum { expected, got } => Error::Corrupt {
            offset: 0,
            reason: format!(
                "header checksum mismatch (stored {expected:#010x}, computed {got:#010x})"
            ),
        },
        HeaderError::Version(found) => Error::UnsupportedVersion {
            path,
            found,
            supported: mmblob_entry::format::FORMAT_VERSION,
        },
        HeaderError::Alignment(alignment) => Error::NotAStore {
            path,
            reason: format!("payload alignment {alignment} is not 64"),
        },
    }
}

fn read_header(path: &Path, file: &File, len: u64) -> Result<Header> {
    let mut bytes = vec![0u8; len.min(HEADER_LEN) as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| io_err(path, "reading header of", e))?;
    Header::decode(&bytes).map_err(|e| header_error(path, e))
}

/// Reads a store file: header, committed end, index. Cuts a torn tail when
/// the handle is writable.
pub(crate) fn load(path: &Path, file: File, options: &OpenOptions) -> Result<Loaded> {
    let mut len = file
        .metadata()
        .map_err(|e| io_err(path, "reading metadata of", e))?
        .len();
    if len == 0 {
        if options.read_only {
            return empty_view(path, file);
        }
        file.write_all_at(
            &Header {
                store_id: new_store_id(),
            }
            .encode(),
            0,
        )
        .and_then(|()| file.sync_all())
        .map_err(|e| io_err(path, "writing header of", e))?;
        len = HEADER_LEN;
    }
    let store_id = read_header(path, &file, len)?.store_id;
    let ctx = Ctx {
        store_id,
        hasher: options.hasher,
    };
    let found = ctx
        .recover_tail(&file, len, HEADER_LEN)
        .map_err(|e| io_err(path, "recovering", e))?;
    let tail = found.end;
    let mut damage = found.damage.clone();
    if tail < len {
        // Only zeros after the last entry: a writer's reservation (see the
        // format docs), in use or left by a crash between writes. Not a torn
        // write and not damage; a writable open gives the space back.
        let reserved =
            skip_zero_tail(&file, len, tail).map_err(|e| io_err(path, "recovering", e))? == tail;
        let cut = !options.read_only;
        if reserved {
            debug!(path = %path.display(), bytes = len - tail, tail, "zeros reserved after the last entry");
        } else {
            damage.push(Damage::new(tail..len, DamageKind::TornTail { cut }));
            if options.read_only {
                warn!(path = %path.display(), torn_bytes = len - tail, tail, "ignoring bytes after the last complete entry (an interrupted write, or a write in progress); this read-only handle leaves them alone");
            } else {
                warn!(path = %path.display(), torn_bytes = len - tail, tail, "cutting off an interrupted write at the end of the store");
            }
        }
        // A strict open cuts only once its check passed (see `open_with`).
        if cut && !options.strict {
            file.set_len(tail)
                .and_then(|()| file.sync_all())
                .map_err(|e| io_err(path, "cutting torn tail of", e))?;
        }
    }
    // SAFETY: `0..tail` holds committed entries (it ends in a complete chain
    // of trailers); mmblob never changes or truncates committed bytes.
    let map = Arc::new(
        unsafe { Mapping::new(&file, map_capacity(tail), tail, store_id) }
            .map_err(|e| io_err(path, "mapping", e))?,
    );
    let expect = snapshot::Expect {
        store_id,
        tail,
        crc_at: {
            let map = Arc::clone(&map);
            Box::new(move |end| trailer_crc(&map, end))
        },
    };
    let hidden = hidden_entries(map.readable(), &found, &ctx);
    let from_snapshot = snapshot::load(path, &expect)
        .and_then(|snap| catch_up(&map, found.chain_end, &hidden, snap, &ctx));
    let Built {
        tables,
        damage: walk_damage,
        live,
        covered: mut snapshot_tail,
        damaged_keys,
    } = from_snapshot
        .unwrap_or_else(|| rebuild_index(map.readable(), found.chain_end, &hidden, &ctx));
    damage.extend(walk_damage);
    if let Some(reach) = snapshot::reach(path).filter(|r| r.store_id == store_id) {
        if reach.tail < found.chain_end && trailer_crc(&map, reach.tail) == Some(reach.tail_crc) {
            // Entries written since the last clean close (or since damage
            // known then) have had no checksum checked yet: check them now.
            damage.extend(check_since(
                map.readable(),
                found.chain_end,
                reach.tail,
                &ctx,
            ));
        }
        if reach.tail > tail {
            damage.push(Damage::new(
                tail..reach.tail,
                DamageKind::Truncated {
                    keys_then: reach.live_entries,
                    keys_now: live.entries,
                },
            ));
        } else if reach.tail == tail
            && snapshot_tail.is_none()
            && live.entries < snapshot::MIN_KEYS
            && trailer_crc(&map, tail) == Some(reach.tail_crc)
        {
            // The small sidecar already records this end.
            snapshot_tail = Some(tail);
        }
    }
    damage.sort_by_key(|d| d.range.start);
    Ok(Loaded {
        file,
        map,
        tail,
        store_id,
        tables,
        damage,
        live,
        snapshot_tail,
        damaged_keys,
        file_len: len,
    })
}

/// Checksums every entry between `stop` and `tail` (found by a walk); the
/// damage, with the intact entries of damaged batches.
fn check_since(bytes: &[u8], tail: u64, stop: u64, ctx: &Ctx) -> Vec<Damage> {
    let started = Instant::now();
    let mut entries = Vec::new();
    let outcome = walk(bytes, tail, stop, ctx, |entry| entries.push(entry));
    if !outcome.reached_stop {
        return Vec::new();
    }
    let intact: Vec<Walked> = entries.iter().filter(|e| !e.damaged).copied().collect();
    let mismatches = crate::maintain::check_all(bytes, ctx, &intact, &|_| {});
    let mut damage = outcome.damage;
    if !damage.is_empty() || !mismatches.is_empty() {
        let mut failing = mismatches.clone();
        failing.extend(
            damage
                .iter()
                .filter(|d| matches!(d.kind, DamageKind::ChecksumMismatch { .. }))
                .cloned(),
        );
        damage.extend(crate::maintain::incomplete_batches(
            bytes, ctx, &entries, &failing,
        ));
    }
    damage.extend(mismatches);
    info!(
        entries = entries.len(),
        damaged = damage.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "checked the entries written since the store was last closed cleanly"
    );
    damage
}

/// The entries of a damaged last batch as index changes: tombstones, so
/// that they hide older entries of their keys; entries whose key bytes do
/// not match their key hash are left out (their key is unknown).
fn hidden_entries(bytes: &[u8], found: &Tail, ctx: &Ctx) -> Vec<Walked> {
    found
        .hidden
        .iter()
        .filter(|f| ctx.structure(bytes, f.end()).is_some())
        .map(Walked::damaged)
        .collect()
}

/// A read-only view of a file that has no header yet.
fn empty_view(path: &Path, file: File) -> Result<Loaded> {
    // SAFETY: nothing is readable.
    let map =
        Arc::new(unsafe { Mapping::new(&file, 0, 0, 0) }.map_err(|e| io_err(path, "mapping", e))?);
    Ok(Loaded {
        file,
        map,
        tail: 0,
        store_id: 0,
        tables: Index::empty_tables(),
        damage: Vec::new(),
        live: LiveTotals::default(),
        snapshot_tail: None,
        damaged_keys: Vec::new(),
        file_len: 0,
    })
}

/// The stored checksum of the entry ending at `end` (0 for an empty store).
pub(crate) fn trailer_crc(map: &Mapping, end: u64) -> Option<u32> {
    if end == HEADER_LEN {
        return Some(0);
    }
    let raw = map.bytes(end.checked_sub(4)?..end)?;
    Some(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

/// Index changes for entries a walk found (newest first), oldest first.
pub(crate) fn changes_oldest_first<'b>(bytes: &'b [u8], walked: &[Walked]) -> Vec<Change<'b>> {
    walked
        .iter()
        .rev()
        .filter_map(|entry| {
            let key = key_in(bytes, entry.end)?;
            let (payload_len, size) = entry_sizes(bytes, entry.end)?;
            Some(Change {
                hash: entry.hash,
                end: entry.end,
                tombstone: entry.tombstone,
                key,
                payload_len,
                size,
            })
        })
        .collect()
}

/// The keys of `walked` (newest first) whose newest entry there is damaged,
/// with the offset where that entry starts.
pub(crate) fn damaged_newest(bytes: &[u8], walked: &[Walked]) -> KeyOffsets {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for entry in walked {
        let Some(key) = key_in(bytes, entry.end) else {
            continue;
        };
        if seen.insert(key) && entry.damaged {
            out.push((key.to_vec(), entry_start(bytes, entry.end)));
        }
    }
    out
}

/// Where the entry ending at `end` starts (the end of the previous one).
fn entry_start(bytes: &[u8], end: u64) -> u64 {
    entry_sizes(bytes, end).map_or(end, |(_, size)| end - size)
}

/// Brings a snapshot up to `tail` by walking only the entries after it.
/// `None` when the chain does not lead back to the snapshot's end.
fn catch_up(
    map: &Arc<Mapping>,
    tail: u64,
    hidden: &[Walked],
    snap: snapshot::Snapshot,
    ctx: &Ctx,
) -> Option<Built> {
    let started = Instant::now();
    let bytes = map.readable();
    let mut fresh = hidden.to_vec();
    let outcome = walk(bytes, tail, snap.tail, ctx, |entry| fresh.push(entry));
    if !outcome.reached_stop {
        return None;
    }
    let index = Index::new(snap.tables, map);
    let mut live = snap.live;
    index.apply(&mut live, bytes, &changes_oldest_first(bytes, &fresh));
    info!(
        covered = snap.tail,
        newer_entries = fresh.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "index loaded from snapshot"
    );
    let damaged_keys = damaged_newest(bytes, &fresh);
    Some(Built {
        tables: index.into_tables(),
        damage: outcome.damage,
        live,
        covered: Some(snap.tail),
        damaged_keys,
    })
}

impl Drop for DataStore {
    /// Leaves an index snapshot for the next open of a large store, then
    /// releases the write lock.
    fn drop(&mut self) {
        // Threads let go of their leases on the map when they next read.
        self.lock_state().map.retire();
        if self.options.read_only {
            return;
        }
        self.trim_reservation(&mut self.lock_state());
        self.save_snapshot();
        // Unlock explicitly instead of relying on closing the descriptor: a
        // child process that another thread is spawning holds a copy of every
        // descriptor until it calls exec, and a `flock` lives as long as any
        // copy of its descriptor does, so a writer opening right after this
        // drop could still find the store locked.
        if let Some(lock) = self.lock_state().lock.take() {
            let _ = lock.unlock();
        }
    }
}

impl DataStore {
    /// Writes the index sidecar when the store is large and it is stale;
    /// a failure is logged (the sidecar is only a cache).
    pub(crate) fn save_snapshot(&self) {
        if let Err(e) = self.try_save_snapshot() {
            warn!(path = %self.path.display(), error = %e, "could not save the index snapshot; the next open walks the chain");
        }
    }

    /// [`DataStore::save_snapshot`], returning the error.
    pub(crate) fn try_save_snapshot(&self) -> Result<()> {
        let mut state = self.lock_state();
        let stale = state.snapshot_tail != Some(state.tail);
        let damage = self.damage();
        if !stale || state.tail < HEADER_LEN {
            return Ok(());
        }
        // A truncation keeps the sidecar that records how far the store
        // reached. Other damage is recorded by saving only how far the
        // store reached *before* it, so the next open checks every entry
        // after that point again and finds the damage (bytes of an
        // interrupted write are not damage).
        if damage
            .iter()
            .any(|d| matches!(d.kind, DamageKind::Truncated { .. }))
        {
            return Ok(());
        }
        let first_damage = damage
            .iter()
            .filter(|d| !d.is_torn_tail())
            .map(|d| d.range.start)
            .min();
        let tail = first_damage.map_or(state.tail, |start| start.min(state.tail));
        let Some(crc) = trailer_crc(&state.map, tail) else {
            return Ok(());
        };
        let covered = snapshot::Covered {
            store_id: state.store_id,
            tail,
            tail_crc: crc,
            live: state.live,
        };
        let saved = if first_damage.is_some() || state.live.entries < snapshot::MIN_KEYS {
            // Small stores open fast by walking: record only how far the
            // store reached, so that open can tell a truncated file.
            snapshot::save(&self.path, &covered, &[])
        } else {
            self.index
                .with_tables(|tables| snapshot::save(&self.path, &covered, tables))
        };
        saved.map_err(|e| io_err(&self.path, "saving the index snapshot of", e))?;
        state.snapshot_tail = Some(state.tail);
        Ok(())
    }
}

/// Walks the chain newest-first and keeps, per key, only the newest entry
/// (dropping keys whose newest entry is a tombstone).
fn rebuild_index(bytes: &[u8], tail: u64, hidden: &[Walked], ctx: &Ctx) -> Built {
    let started = Instant::now();
    let mut tables = Index::empty_tables();
    let mut walked = 0u64;
    let mut damaged_keys = Vec::new();
    let mut visit = |entry: Walked| {
        walked += 1;
        let Some(key) = key_in(bytes, entry.end) else {
            return;
        };
        let table = &mut tables[shard_of(entry.hash)];
        let seen = table.get(entry.hash, |end| {
            key_in(bytes, end & !TOMBSTONE_BIT) == Some(key)
        });
        if seen.is_none() {
            if !table.has_room(1) {
                *table = table.grown(1);
            }
            let marker = if entry.tombstone { TOMBSTONE_BIT } else { 0 };
            table.insert_new(entry.hash, entry.end | marker);
            if entry.damaged {
                damaged_keys.push((key.to_vec(), entry_start(bytes, entry.end)));
            }
        }
    };
    for &entry in hidden {
        visit(entry);
    }
    let outcome = walk(bytes, tail, HEADER_LEN, ctx, visit);
    let tables: Vec<Table> = tables
        .iter()
        .map(|t| t.rebuilt(|end| end & TOMBSTONE_BIT == 0))
        .collect();
    let live = live_totals(bytes, &tables);
    info!(
        entries_walked = walked,
        live_keys = live.entries,
        damaged = outcome.damage.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "index rebuilt from the trailer chain"
    );
    Built {
        tables,
        damage: outcome.damage,
        live,
        covered: None,
        damaged_keys,
    }
}

fn live_totals(bytes: &[u8], tables: &[Table]) -> LiveTotals {
    let mut live = LiveTotals::default();
    for end in tables.iter().flat_map(Table::ends) {
        live.add(bytes, end);
    }
    live
}

impl LiveTotals {
    /// Counts the entry ending at `end` as live.
    pub(crate) fn add(&mut self, bytes: &[u8], end: u64) {
        if let Some((payload, size)) = entry_sizes(bytes, end) {
            self.add_sizes(payload, size);
        }
    }

    /// Counts an entry of `payload` value bytes and `size` bytes in all as live.
    pub(crate) fn add_sizes(&mut self, payload: u64, size: u64) {
        self.entries += 1;
        self.payload_bytes += payload;
        self.entry_bytes += size;
    }

    /// Stops counting the entry ending at `end`.
    pub(crate) fn remove(&mut self, bytes: &[u8], end: u64) {
        if let Some((payload, size)) = entry_sizes(bytes, end) {
            self.entries = self.entries.saturating_sub(1);
            self.payload_bytes = self.payload_bytes.saturating_sub(payload);
            self.entry_bytes = self.entry_bytes.saturating_sub(size);
        }
    }
}

/// `(payload_len, whole entry length)` of the entry ending at `end`.
pub(crate) fn entry_sizes(bytes: &[u8], end: u64) -> Option<(u64, u64)> {
    let start = usize::try_from(end.checked_sub(32)?).ok()?;
    let raw: &[u8; 32] = bytes.get(start..start + 32)?.try_into().ok()?;
    let trailer = mmblob_entry::format::Trailer::decode(raw);
    Some((trailer.payload_len, end - trailer.prev_end))
}
