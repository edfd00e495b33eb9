//! Atomic batches of writes and deletes, and the one path every batch takes
//! to the file.
//!
//! A batch, whatever it holds, is appended as a run of entries whose
//! trailers all carry the batch-continues flag except the last one. Recovery
//! cuts a tail that ends in flagged entries back to before the run, so after
//! a crash either every entry of the batch is in the store or none is.
//!
//! The run is encoded and written a chunk at a time ([`CHUNK`] bytes), so a
//! batch needs no buffer as large as itself: memory beyond the caller's own
//! keys and values is a chunk plus a few dozen bytes per entry. The tail
//! moves, and readers see the batch, only once all of it is written.
//! Bounded writes are also faster than huge ones: one `pwrite` of several
//! MiB costs several times what the same bytes cost in calls of a few
//! hundred KiB.
//!
//! Each step is linear in the size of the batch: duplicates are found with
//! a hash set keyed by the key hash the entries need anyway, and index
//! lookups for deletes are prefetched a window at a time.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use mmblob_entry::EntryHandle;
use mmblob_entry::checksum::EntryCrc;
use mmblob_entry::format::{
    FLAG_BATCH_CONTINUES, MAX_VALUE_LEN, TRAILER_LEN, Trailer, payload_start,
};

use crate::append::{Appended, Appender, check_key};
use crate::error::{Error, Result};
use crate::store::{DataStore, State, io_err};

/// Encoded bytes written per system call (at most one entry more).
const CHUNK: u64 = 256 * 1024;
/// Keys whose hashes are computed and whose index slots are prefetched
/// together when a batch decides which deletes count.
const LOOKUP_WINDOW: usize = 32;
/// How far ahead of the entry being encoded its value is prefetched.
const PREFETCH_AHEAD: usize = 8;

/// Bytes of the file per bit of [`DeadEnds::Blocks`]: less than the
/// shortest entry (a trailer and a one-byte key), so that two entry ends
/// never share a cell.
const DEAD_CELL: u64 = TRAILER_LEN;
/// One operation of a batch: a write (`Some(value)`) or a delete (`None`).
type Op<'k> = (&'k [u8], Option<&'k [u8]>);

/// An operation held by a [`WriteBatch`], its bytes borrowed or owned.
type OwnedOp<'a> = (Cow<'a, [u8]>, Option<Cow<'a, [u8]>>);

/// What a committed batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchOutcome {
    /// The end of the file after the batch (unchanged when it wrote nothing).
    pub end: u64,
    /// How many values were written (every write, duplicates included).
    pub written: usize,
    /// How many deletes removed a key that existed at that point of the
    /// batch: in the store before it, or written earlier in it. A key
    /// deleted twice counts once; deleting a missing key writes nothing.
    pub deleted: usize,
}

/// Bytes a [`WriteBatch`] can take as a key or a value: borrowed for as long
/// as the batch lives, or owned by it.
pub trait BatchBytes<'a> {
    /// The bytes, borrowed or owned.
    fn into_bytes(self) -> Cow<'a, [u8]>;
}

impl<'a> BatchBytes<'a> for &'a [u8] {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<'a, const N: usize> BatchBytes<'a> for &'a [u8; N] {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<'a> BatchBytes<'a> for &'a Vec<u8> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<'a> BatchBytes<'a> for &'a str {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl<'a> BatchBytes<'a> for &'a String {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl<'a> BatchBytes<'a> for &'a EntryHandle {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.as_slice())
    }
}

impl<'a> BatchBytes<'a> for Vec<u8> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self)
    }
}

impl<'a> BatchBytes<'a> for Box<[u8]> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self.into_vec())
    }
}

impl<'a> BatchBytes<'a> for String {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self.into_bytes())
    }
}

impl<'a> BatchBytes<'a> for Cow<'a, [u8]> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        self
    }
}

/// Writes and deletes collected to be applied in one atomic step: after a
/// crash either all of them happened or none. Made by [`DataStore::batch`];
/// nothing reaches the store until [`WriteBatch::commit`].
///
/// Operations apply in the order they were added: the last write of a key
/// wins, a delete after a write of the same key removes it, a write after a
/// delete brings it back. Keys and values may be borrowed (`&[u8]`, byte
/// string literals, `&str`, `&EntryHandle`, ...) or owned (`Vec<u8>`,
/// `String`, ...).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let store = mmblob_engine::DataStore::open(dir.path().join("s")).unwrap();
/// store.write(b"draft", b"v1").unwrap();
/// let mut batch = store.batch();
/// batch.write(b"final", b"v1");
/// batch.write(format!("log/{}", 7), vec![1, 2, 3]);
/// batch.delete(b"draft");
/// let done = batch.commit().unwrap();
/// assert_eq!((done.written, done.deleted), (2, 1));
/// assert!(!store.exists(b"draft").unwrap());
/// assert_eq!(store.read(b"log/7").unwrap().as_deref(), Some(&[1, 2, 3][..]));
/// ```
#[must_use = "a batch does nothing until it is committed"]
pub struct WriteBatch<'a> {
    store: &'a DataStore,
    ops: Vec<OwnedOp<'a>>,
}

impl std::fmt::Debug for WriteBatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let deletes = self.ops.iter().filter(|(_, v)| v.is_none()).count();
        f.debug_struct("WriteBatch")
            .field("store", &self.store.path())
            .field("writes", &(self.ops.len() - deletes))
            .field("deletes", &deletes)
            .finish()
    }
}

impl<'a> WriteBatch<'a> {
    /// Adds a write of `value` under `key`.
    pub fn write(&mut self, key: impl BatchBytes<'a>, value: impl BatchBytes<'a>) -> &mut Self {
        self.ops.push((key.into_bytes(), Some(value.into_bytes())));
        self
    }

    /// Adds a delete of `key` (nothing is written for it if `key` does not
    /// exist at that point of the batch).
    pub fn delete(&mut self, key: impl BatchBytes<'a>) -> &mut Self {
        self.ops.push((key.into_bytes(), None));
        self
    }

    /// Makes room for `additional` more operations.
    pub fn reserve(&mut self, additional: usize) {
        self.ops.reserve(additional);
    }

    /// How many operations the batch holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch holds no operation.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Applies every operation in one atomic step and returns what it did.
    /// An empty batch, or one whose deletes all miss, writes nothing.
    ///
    /// Costs time linear in the number of operations and memory for a few
    /// dozen bytes per operation plus a fixed chunk, however large the
    /// values are. Under `Durability::Sync` the batch is on stable storage
    /// when this returns.
    ///
    /// # Errors
    /// [`Error::InvalidKey`], [`Error::ValueTooLarge`] or
    /// [`Error::ReservedKey`] (a write to a key in the stored form of a
    /// [namespace](DataStore::namespace) key) for any bad operation (then
    /// nothing is written), [`Error::ReadOnly`], and
    /// [`Error::Io`] when the append fails (nothing of the batch is visible
    /// and the store stays usable).
    pub fn commit(self) -> Result<BatchOutcome> {
        let ops = &self.ops;
        for (key, value) in ops {
            if value.is_some() {
                crate::namespace::refuse_reserved(key)?;
            }
        }
        self.store.apply_batch("commit a batch", ops.len(), |i| {
            let (key, value) = &ops[i];
            (key.as_ref(), value.as_deref())
        })
    }
}

impl DataStore {
    /// A new, empty [`WriteBatch`] for this store.
    pub fn batch(&self) -> WriteBatch<'_> {
        WriteBatch {
            store: self,
            ops: Vec::new(),
        }
    }

    /// Checks and applies `count` operations (`op(i)` is the `i`-th) as one
    /// atomic batch, then makes it durable as the store's durability asks.
    pub(crate) fn apply_batch<'k>(
        &self,
        operation: &'static str,
        count: usize,
        op: impl Fn(usize) -> Op<'k>,
    ) -> Result<BatchOutcome> {
        self.check_writable(operation)?;
        let mut deletes = false;
        for i in 0..count {
            let (key, value) = op(i);
            check_key(key)?;
            match value {
                None => deletes = true,
                Some(value) if value.len() as u64 > MAX_VALUE_LEN => {
                    return Err(Error::ValueTooLarge {
                        len: value.len() as u64,
                    });
                }
                Some(_) => {}
            }
        }
        let mut state = self.lock_state();
        let outcome = self.apply_locked(&mut state, count, deletes, &op)?;
        let epoch = state.epoch;
        drop(state);
        if outcome.written + outcome.deleted > 0 {
            self.make_durable(outcome.end, epoch)?;
        }
        Ok(outcome)
    }

    /// [`DataStore::apply_batch`] for checked operations, under the writer
    /// lock; `deletes` tells whether any operation is a delete.
    pub(crate) fn apply_locked<'k>(
        &self,
        state: &mut State,
        count: usize,
        deletes: bool,
        op: &impl Fn(usize) -> Op<'k>,
    ) -> Result<BatchOutcome> {
        let (emitted, deleted) = if deletes {
            let (emitted, deleted) = self.plan(state, count, op);
            (Some(emitted), deleted)
        } else {
            (None, 0)
        };
        let entries = emitted.as_ref().map_or(count, Vec::len);
        if entries == 0 {
            return Ok(BatchOutcome {
                end: state.tail,
                written: 0,
                deleted: 0,
            });
        }
        let position = |j: usize| emitted.as_ref().map_or(j, |e| e[j]);
        let end = self.append_batch(state, entries, &position, op)?;
        if deleted > 0 {
            self.forget_damaged_keys(
                (0..entries)
                    .map(|j| op(position(j)))
                    .filter(|(_, value)| value.is_none())
                    .map(|(key, _)| key),
            );
        }
        Ok(BatchOutcome {
            end,
            written: entries - deleted,
            deleted,
        })
    }

    /// Which operations write an entry (by index, in order) and how many of
    /// them are deletes: every write, and every delete of a key that exists
    /// at that point of the batch.
    ///
    /// Keys written in the batch are tracked in a hash set. Any other key
    /// exists while its indexed entry has not been deleted earlier in the
    /// batch; those deleted entries are remembered by their end offset,
    /// which for a dense file fits a bitmap of a bit per 32 bytes (an entry
    /// is at least 33 bytes long, so no two end in one cell), far smaller
    /// than a set of keys.
    fn plan<'k>(
        &self,
        state: &State,
        count: usize,
        op: &impl Fn(usize) -> Op<'k>,
    ) -> (Vec<usize>, usize) {
        let mut written: KeyMap<'k, bool> = HashMap::default();
        let mut dead = DeadEnds::new(state.tail, count);
        let mut damaged_deleted: std::collections::HashSet<&'k [u8]> = Default::default();
        let mut emitted = Vec::with_capacity(count);
        let mut deleted = 0;
        let mut hashes = [0u64; LOOKUP_WINDOW];
        // Pinned once, the lookups' own pins cost a counter increment each.
        let _pinned = crossbeam_epoch::pin();
        for from in (0..count).step_by(LOOKUP_WINDOW) {
            let window = from..count.min(from + LOOKUP_WINDOW);
            let hashes = &mut hashes[..window.len()];
            for (hash, i) in hashes.iter_mut().zip(window.clone()) {
                *hash = self.hash(op(i).0);
            }
            self.index.prefetch(hashes);
            for (&hash, i) in hashes.iter().zip(window) {
                let (key, value) = op(i);
                let hashed = Hashed { hash, key };
                if value.is_some() {
                    written.insert(hashed, true);
                    emitted.push(i);
                    continue;
                }
                let live = match written.get_mut(&hashed) {
                    Some(live) => std::mem::replace(live, false),
                    None => match self.index.end_of(hash, key) {
                        Some(end) => dead.insert(end),
                        // A key hidden because its newest entry is damaged
                        // exists too, until this batch deletes it.
                        None => self.is_damaged_key(key) && damaged_deleted.insert(key),
                    },
                };
                if live {
                    emitted.push(i);
                    deleted += 1;
                }
            }
        }
        (emitted, deleted)
    }

    /// Appends `entries` entries as one batch, a chunk at a time, then
    /// makes them visible. Entry `j` is operation `position(j)` of `op`. On
    /// failure the file is cut back and nothing is visible.
    fn append_batch<'k>(
        &self,
        state: &mut State,
        entries: usize,
        position: &impl Fn(usize) -> usize,
        op: &impl Fn(usize) -> Op<'k>,
    ) -> Result<u64> {
        self.cut_failed_append(state)?;
        let prev_end = state.tail;
        // Map the whole batch before writing any of it: a batch that cannot
        // be mapped then fails without touching the file.
        let mut end = prev_end;
        for j in 0..entries {
            let (key, value) = op(position(j));
            let len = value.map_or(0, <[u8]>::len) as u64;
            end = payload_start(end, len)
                .and_then(|start| start.checked_add(len + key.len() as u64 + TRAILER_LEN))
                .ok_or(Error::ValueTooLarge { len })?;
        }
        self.reserve_map(state, end)?;
        let mut appended: Vec<Appended> = Vec::with_capacity(entries);
        let mut chunk_start = prev_end;
        let mut appender = self.chunk_appender(state, chunk_start);
        for j in 0..entries {
            if j + PREFETCH_AHEAD < entries
                && let (_, Some(ahead)) = op(position(j + PREFETCH_AHEAD))
            {
                prefetch_small(ahead);
            }
            let i = position(j);
            let (key, value) = op(i);
            let continues = j + 1 < entries;
            let (tombstone, value) = match value {
                Some(value) => (false, value),
                None => (true, &[][..]),
            };
            if value.len() as u64 > CHUNK {
                self.flush(state, &mut appender, &mut appended, prev_end)?;
                let at = appender.end();
                let mut large = self.append_large(state, prev_end, at, key, value, continues)?;
                large.position = i;
                appended.push(large);
                chunk_start = large.end;
                appender = self.chunk_appender(state, chunk_start);
                continue;
            }
            appender.push(key, value, tombstone, continues, i);
            if appender.end() - chunk_start >= CHUNK {
                self.flush(state, &mut appender, &mut appended, prev_end)?;
                chunk_start = appender.end();
            }
        }
        self.flush(state, &mut appender, &mut appended, prev_end)?;
        debug_assert_eq!(end, appender.end());
        self.publish(state, &appended, |i| op(i).0);
        Ok(end)
    }

    fn chunk_appender<'v>(&self, state: &State, start: u64) -> Appender<'v> {
        let mut appender = Appender::new(state.store_id, self.options.hasher, start);
        appender.reserve(0, CHUNK as usize + CHUNK as usize / 4);
        appender
    }

    /// Writes what `appender` holds and starts a new chunk after it.
    fn flush<'v>(
        &self,
        state: &mut State,
        appender: &mut Appender<'v>,
        appended: &mut Vec<Appended>,
        prev_end: u64,
    ) -> Result<()> {
        if appender.entries().is_empty() {
            return Ok(());
        }
        self.append(state, appender, prev_end)?;
        appended.extend_from_slice(appender.entries());
        *appender = self.chunk_appender(state, appender.end());
        Ok(())
    }

    /// Writes a value entry larger than a chunk at `at`, its payload a chunk
    /// per call, checksummed as it goes. On failure the file is cut back to
    /// `prev_end`.
    fn append_large(
        &self,
        state: &mut State,
        prev_end: u64,
        at: u64,
        key: &[u8],
        value: &[u8],
        continues: bool,
    ) -> Result<Appended> {
        let payload_len = value.len() as u64;
        let too_large = Error::ValueTooLarge { len: payload_len };
        let start = payload_start(at, payload_len).ok_or(too_large)?;
        let end = start + payload_len + key.len() as u64 + TRAILER_LEN;
        let mut trailer = Trailer {
            prev_end: at,
            key_hash: self.hash(key),
            payload_len,
            // Keys were checked to be 1..=65535 bytes.
            key_len: key.len() as u16,
            flags: if continues { FLAG_BATCH_CONTINUES } else { 0 },
            crc: 0,
        };
        // As in `append`: the map covers the entry before it becomes valid.
        if let Err(e) = self.reserve_map(state, end) {
            return Err(self.roll_back(state, prev_end, e));
        }
        let file = Arc::clone(&state.file);
        let written = (|| {
            file.write_all_at(&[0u8; 64][..(start - at) as usize], at)?;
            let mut crc = EntryCrc::new(state.store_id);
            let mut pos = start;
            for piece in value.chunks(CHUNK as usize) {
                crc.update(piece);
                file.write_all_at(piece, pos)?;
                pos += piece.len() as u64;
            }
            crc.update(key);
            trailer.crc = crc.finish_with(&trailer);
            let mut tail = Vec::with_capacity(key.len() + TRAILER_LEN as usize);
            tail.extend_from_slice(key);
            tail.extend_from_slice(&trailer.encode());
            file.write_all_at(&tail, pos)
        })();
        if let Err(e) = written {
            let err = io_err(&self.path, "appending to", e);
            return Err(self.roll_back(state, prev_end, err));
        }
        // Written with `pwrite`, like the chunks (see `append`).
        state.wrote_through_file(end);
        Ok(Appended {
            hash: trailer.key_hash,
            end,
            tombstone: false,
            position: 0,
            payload_len,
            size: end - at,
        })
    }

    /// Moves the value of `old` to `new` in one atomic batch (see
    /// [`DataStore::rename`]).
    pub(crate) fn rename_batch(&self, old: &[u8], new: &[u8]) -> Result<()> {
        self.check_writable("rename")?;
        check_key(old)?;
        check_key(new)?;
        let mut state = self.lock_state();
        let Some((map, end)) = self.index.get(self.hash(old), old) else {
            return Err(Error::KeyNotFound { key: old.to_vec() });
        };
        if old == new {
            return Ok(());
        }
        let value = EntryHandle::at(map, end)?;
        let ops: [Op<'_>; 2] = [(new, Some(value.as_slice())), (old, None)];
        let outcome = self.apply_locked(&mut state, 2, true, &|i| ops[i])?;
        let epoch = state.epoch;
        drop(state);
        self.make_durable(outcome.end, epoch).map(drop)
    }
}

/// Entry ends deleted earlier in a batch.
enum DeadEnds {
    /// A bit per [`DEAD_CELL`] bytes of the file.
    Blocks(Vec<u64>),
    Set(HashSet<u64>),
}

impl DeadEnds {
    /// A set for a batch of `ops` operations on a file ending at `tail`:
    /// a bitmap unless it would take more than 16 bytes per operation.
    fn new(tail: u64, ops: usize) -> DeadEnds {
        let words = tail / DEAD_CELL / 64 + 1;
        if words.saturating_mul(8) <= (ops as u64).saturating_mul(16) {
            DeadEnds::Blocks(vec![0; words as usize])
        } else {
            DeadEnds::Set(HashSet::new())
        }
    }

    /// Records `end`; false if it was recorded before.
    fn insert(&mut self, end: u64) -> bool {
        match self {
            DeadEnds::Blocks(words) => {
                let block = (end - 1) / DEAD_CELL;
                let (word, bit) = ((block / 64) as usize, 1u64 << (block % 64));
                let fresh = words[word] & bit == 0;
                words[word] |= bit;
                fresh
            }
            DeadEnds::Set(ends) => ends.insert(end),
        }
    }
}

/// A key with its precomputed hash, for hash sets that need not hash again.
#[derive(Clone, Copy)]
struct Hashed<'k> {
    hash: u64,
    key: &'k [u8],
}

impl Hash for Hashed<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for Hashed<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl Eq for Hashed<'_> {}

/// Hands a [`Hashed`] key's hash through unchanged.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeyMap<'k, V> = HashMap<Hashed<'k>, V, BuildHasherDefault<PassThrough>>;

/// Starts loading a short value's cache lines, so that encoding finds it in
/// cache instead of waiting on it.
fn prefetch_small(value: &[u8]) {
    const SHORT: usize = 256;
    if let (Some(first), Some(last), true) = (value.first(), value.last(), value.len() <= SHORT) {
        mmblob_entry::prefetch(first);
        mmblob_entry::prefetch(last);
    }
}
