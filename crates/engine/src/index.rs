//! The in-memory index: key hash → end offset of the newest live entry.
//!
//! Split into 64 shards by the low bits of the hash, each padded to its own
//! cache lines. A shard holds a [`Table`] and the [`Mapping`] its offsets
//! refer to, each behind an epoch-managed pointer, so a reader always gets
//! an offset and a map that belong together, even while compaction swaps in
//! a new file.
//!
//! Lookups take no lock and write no shared memory: a shard carries a
//! sequence number that the writer makes odd while it changes the shard and
//! even again when done (a seqlock). A lookup reads the number, looks the key
//! up, and keeps the answer only if the number did not move; otherwise it
//! waits on the shard's lock and looks again. An atomic read-modify-write
//! per lookup (a lock, a reference count) would order every later load
//! behind it, and the cache misses of consecutive lookups could no longer
//! overlap.
//!
//! The writer (serialised by the store) holds a shard's lock for writing
//! only for a few slot updates or a pointer swap; growing a table is done on
//! a copy outside it. Readers that need a shard to hold still for longer
//! (snapshots for iteration, saving the sidecar) hold the lock for reading.
//!
//! A table or map taken out of a shard is not dropped on the spot but handed
//! to the epoch collector of `crossbeam-epoch`, so that lookups still
//! reading it, and values lent from a map (see [`Index::find_pinned`]),
//! stay valid until their readers unpin.

use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crossbeam_epoch::{self as epoch, Atomic, Guard, Owned, Shared};

use mmblob_entry::Mapping;
use mmblob_entry::format::TRAILER_LEN;

use crate::order::LiveEnds;
use crate::snapshot::for_each_shard;
use crate::store::LiveTotals;
use crate::table::Table;

const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;
/// Changes applied per round of prefetching: their slots (one cache line
/// each) stay in cache until they are written.
const APPLY_WINDOW: usize = 2048;
/// Slot updates made under one hold of a shard's write lock: readers of
/// that shard wait for at most this many (tens of nanoseconds), while a
/// batch still pays one lock round trip per few entries, not per entry.
const UPDATES_PER_LOCK: usize = 16;

/// One change to the index: `key` now lives in the entry ending at `end`,
/// or (for a tombstone) no longer lives anywhere.
pub(crate) struct Change<'k> {
    pub(crate) hash: u64,
    pub(crate) end: u64,
    pub(crate) tombstone: bool,
    pub(crate) key: &'k [u8],
    /// Payload length and whole entry length, for the live totals.
    pub(crate) payload_len: u64,
    pub(crate) size: u64,
}

/// One shard's table and the map its offsets point into.
#[repr(align(128))]
struct Shard {
    /// Even while the shard holds still, odd while the writer changes it.
    seq: AtomicU64,
    /// Held for writing around every change (see [`WriteSection`]), for
    /// reading by readers that need the shard to hold still.
    lock: RwLock<()>,
    /// Never null while the shard is shared.
    table: Atomic<Table>,
    /// Never null while the shard is shared.
    map: Atomic<Arc<Mapping>>,
}

/// The sharded index of live keys.
pub(crate) struct Index {
    shards: Box<[Shard]>,
}

/// A shard held still for reading (its lock held for reading).
struct Stable<'a> {
    shard: &'a Shard,
    guard: Guard,
    _lock: RwLockReadGuard<'a, ()>,
}

/// A change in progress to one shard: its lock held for writing and its
/// sequence number odd. Dropping it publishes the change.
struct WriteSection<'a> {
    shard: &'a Shard,
    guard: Guard,
    seq: u64,
    _lock: RwLockWriteGuard<'a, ()>,
}

impl Shard {
    fn new(table: Table, map: &Arc<Mapping>) -> Shard {
        Shard {
            seq: AtomicU64::new(0),
            lock: RwLock::new(()),
            table: Atomic::new(table),
            map: Atomic::new(Arc::clone(map)),
        }
    }

    /// The current table.
    fn table<'a>(&'a self, guard: &'a Guard) -> &'a Table {
        // SAFETY: the pointer is never null while the shard is shared (set
        // in `new`, only ever swapped for another owned table). A table
        // swapped out is destroyed through `Guard::defer_destroy`, which
        // waits until every thread pinned when it was unlinked has unpinned,
        // and `guard` stays pinned for `'a`; the shard itself (whose `Drop`
        // frees the current table) is borrowed for `'a`.
        unsafe { self.table.load(Ordering::Acquire, guard).deref() }
    }

    /// The current map; see [`Shard::table`].
    fn map<'a>(&'a self, guard: &'a Guard) -> &'a Arc<Mapping> {
        // SAFETY: as for `table`: never null, retired only through the
        // collector, `guard` pinned and the shard borrowed for `'a`.
        unsafe { self.map.load(Ordering::Acquire, guard).deref() }
    }

    fn hold_still(&self) -> Stable<'_> {
        Stable {
            _lock: self.lock.read().unwrap_or_else(PoisonError::into_inner),
            shard: self,
            guard: epoch::pin(),
        }
    }

    fn write_section(&self) -> WriteSection<'_> {
        let lock = self.lock.write().unwrap_or_else(PoisonError::into_inner);
        // Only a holder of the write lock changes `seq`.
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq + 1, Ordering::Relaxed);
        // Orders the odd number before every slot store of the section: a
        // lookup that sees one of them sees the odd number (or a later one)
        // when it checks again.
        fence(Ordering::Release);
        WriteSection {
            shard: self,
            guard: epoch::pin(),
            seq,
            _lock: lock,
        }
    }

    /// `f(table, map)` on a view of the shard that no change overlapped,
    /// without a lock unless the writer is changing the shard right now.
    /// `f` may run twice and must not fail on a torn view (whatever it
    /// computes from one is thrown away).
    fn lookup<'a, R>(
        &'a self,
        guard: &'a Guard,
        f: impl Fn(&'a Table, &'a Arc<Mapping>) -> R,
    ) -> R {
        let before = self.seq.load(Ordering::Acquire);
        if before.is_multiple_of(2) {
            let found = f(self.table(guard), self.map(guard));
            // Orders the reads of `f` before the second look at `seq`.
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return found;
            }
        }
        // The writer is busy in this shard: wait for it instead of spinning.
        let _still = self.lock.read().unwrap_or_else(PoisonError::into_inner);
        f(self.table(guard), self.map(guard))
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        // SAFETY: `&mut self` means no thread can reach the shard any more,
        // so nothing can load these pointers again; the tables and maps
        // swapped out earlier were handed to the collector, not these.
        unsafe {
            let guard = epoch::unprotected();
            let table = self.table.swap(Shared::null(), Ordering::Relaxed, guard);
            if !table.is_null() {
                drop(table.into_owned());
            }
            let map = self.map.swap(Shared::null(), Ordering::Relaxed, guard);
            if !map.is_null() {
                drop(map.into_owned());
            }
        }
    }
}

impl Stable<'_> {
    fn table(&self) -> &Table {
        self.shard.table(&self.guard)
    }

    fn map(&self) -> &Arc<Mapping> {
        self.shard.map(&self.guard)
    }
}

impl WriteSection<'_> {
    fn table(&self) -> &Table {
        self.shard.table(&self.guard)
    }

    fn map(&self) -> &Arc<Mapping> {
        self.shard.map(&self.guard)
    }

    /// Puts `table` in place of the current one, which is dropped once no
    /// reader can still be looking at it.
    fn swap_table(&self, table: Table) {
        let old = self
            .shard
            .table
            .swap(Owned::new(table), Ordering::Release, &self.guard);
        // SAFETY: `old` is no longer reachable from the shard, the only
        // place it was published, so only readers pinned before this swap
        // can hold it, and the collector waits for them.
        unsafe { self.guard.defer_destroy(old) };
    }

    /// Puts `map` in place of the current one; see [`WriteSection::swap_table`].
    fn swap_map(&self, map: &Arc<Mapping>) {
        let old = self
            .shard
            .map
            .swap(Owned::new(Arc::clone(map)), Ordering::Release, &self.guard);
        // SAFETY: as in `swap_table`.
        unsafe { self.guard.defer_destroy(old) };
    }
}

impl Drop for WriteSection<'_> {
    fn drop(&mut self) {
        self.shard.seq.store(self.seq + 2, Ordering::Release);
    }
}

/// True when the entry ending at `end` in `bytes` holds `key`.
fn holds_key(bytes: &[u8], end: u64, key: &[u8]) -> bool {
    value_of(bytes, end, key).is_some()
}

/// The value of the entry ending at `end` in `bytes`, when the entry's key
/// is `key`: `Some(Ok(value))`; `Some(Err(end))` when the key matches but
/// the trailer puts the value outside `bytes`; `None` for another key.
fn value_of<'b>(bytes: &'b [u8], end: u64, key: &[u8]) -> Option<Result<&'b [u8], u64>> {
    let end_at = usize::try_from(end).ok()?;
    let trailer_start = end_at.checked_sub(TRAILER_LEN as usize)?;
    let trailer = bytes.get(trailer_start..end_at)?;
    let key_start = trailer_start.checked_sub(key.len())?;
    if usize::from(u16::from_le_bytes([trailer[24], trailer[25]])) != key.len()
        || !same_bytes(bytes.get(key_start..trailer_start)?, key)
    {
        return None;
    }
    let mut payload_len = [0u8; 8];
    payload_len.copy_from_slice(&trailer[16..24]);
    let value = usize::try_from(u64::from_le_bytes(payload_len))
        .ok()
        .and_then(|len| bytes.get(key_start.checked_sub(len)?..key_start));
    Some(value.ok_or(end))
}

/// Slice equality without a call into `memcmp` for the usual short keys.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    };
    match a.len() {
        n if n != b.len() => false,
        n @ 8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// Nudges the collector after tables or maps were swapped out of shards (a
/// table grew, the file outgrew its reservation, compaction, reload): their
/// memory, and an old file's disk space, is released as soon as their last
/// readers are done instead of whenever the collector next runs.
fn collect_soon() {
    for _ in 0..3 {
        epoch::pin().flush();
    }
}

/// Indexes into `changes`, grouped by shard with a counting sort. Stable:
/// the changes of one key stay in their order.
fn in_shard_order(changes: &[Change<'_>]) -> Vec<usize> {
    let mut starts = [0usize; SHARDS];
    for change in changes {
        starts[shard_of(change.hash)] += 1;
    }
    let mut next = 0;
    for start in &mut starts {
        next += std::mem::replace(start, next);
    }
    let mut order = vec![0; changes.len()];
    for (i, change) in changes.iter().enumerate() {
        let slot = &mut starts[shard_of(change.hash)];
        order[*slot] = i;
        *slot += 1;
    }
    order
}

pub(crate) fn shard_of(hash: u64) -> usize {
    (hash & (SHARDS as u64 - 1)) as usize
}

impl Index {
    /// An index over `tables` (one per shard, see [`shard_of`]) into `map`.
    pub(crate) fn new(tables: Vec<Table>, map: &Arc<Mapping>) -> Index {
        debug_assert_eq!(tables.len(), SHARDS);
        let shards = tables
            .into_iter()
            .map(|table| Shard::new(table, map))
            .collect();
        Index { shards }
    }

    /// One empty table per shard.
    pub(crate) fn empty_tables() -> Vec<Table> {
        (0..SHARDS).map(|_| Table::default()).collect()
    }

    pub(crate) fn shard_count() -> usize {
        SHARDS
    }

    /// `f(tables)` with every shard held still.
    pub(crate) fn with_tables<R>(&self, f: impl FnOnce(&[&Table]) -> R) -> R {
        let held: Vec<Stable<'_>> = self.shards.iter().map(Shard::hold_still).collect();
        let tables: Vec<&Table> = held.iter().map(Stable::table).collect();
        f(&tables)
    }

    /// The map and entry end of `key`, if it is live.
    pub(crate) fn get(&self, hash: u64, key: &[u8]) -> Option<(Arc<Mapping>, u64)> {
        let guard = epoch::pin();
        let (map, end) = self.shards[shard_of(hash)].lookup(&guard, |table, map| {
            let bytes = map.readable();
            Some((map, table.get(hash, |end| holds_key(bytes, end, key))?))
        })?;
        Some((Arc::clone(map), end))
    }

    /// The map and entry end of `key`, if it is live, borrowed for as long
    /// as `guard` stays pinned: no reference count is touched.
    pub(crate) fn locate<'a>(
        &'a self,
        hash: u64,
        key: &[u8],
        guard: &'a Guard,
    ) -> Option<(&'a Arc<Mapping>, u64)> {
        self.shards[shard_of(hash)].lookup(guard, |table, map| {
            let bytes = map.readable();
            Some((map, table.get(hash, |end| holds_key(bytes, end, key))?))
        })
    }

    /// `f(value)` for the value of `key`, if it is live (see
    /// [`Index::find_pinned`]). No lock is held while `f` runs, and no
    /// reference count is touched.
    pub(crate) fn with_value<R>(
        &self,
        hash: u64,
        key: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<Result<R, u64>> {
        let guard = epoch::pin();
        Some(self.find_pinned(hash, key, &guard)?.map(f))
    }

    /// The value of `key`, if it is live, readable for as long as both the
    /// index and `guard` are borrowed; `Err(end)` if the indexed entry
    /// ending at `end` has this key but its value lies outside the file.
    pub(crate) fn find_pinned<'a>(
        &'a self,
        hash: u64,
        key: &[u8],
        guard: &'a Guard,
    ) -> Option<Result<&'a [u8], u64>> {
        self.shards[shard_of(hash)].lookup(guard, |table, map| {
            let bytes = map.readable();
            let mut found = None;
            table.get(hash, |end| {
                found = value_of(bytes, end, key);
                found.is_some()
            })?;
            found
        })
    }

    /// Starts loading what lookups of `hashes` will read: first their
    /// index slots, then the entries those slots most likely point to. Only
    /// a hint; it changes nothing.
    pub(crate) fn prefetch(&self, hashes: &[u64]) {
        let guard = epoch::pin();
        for &hash in hashes {
            self.shards[shard_of(hash)].table(&guard).prefetch(hash);
        }
        for &hash in hashes {
            let shard = &self.shards[shard_of(hash)];
            let entry = shard
                .table(&guard)
                .end_near_home(hash)
                .and_then(|end| usize::try_from(end).ok()?.checked_sub(TRAILER_LEN as usize))
                .and_then(|trailer| shard.map(&guard).readable().get(trailer));
            if let Some(byte) = entry {
                mmblob_entry::prefetch(byte);
            }
        }
    }

    /// The entry end of `key`, if it is live.
    pub(crate) fn end_of(&self, hash: u64, key: &[u8]) -> Option<u64> {
        let guard = epoch::pin();
        self.shards[shard_of(hash)].lookup(&guard, |table, map| {
            let bytes = map.readable();
            table.get(hash, |end| holds_key(bytes, end, key))
        })
    }

    /// True when `key` is live.
    pub(crate) fn contains(&self, hash: u64, key: &[u8]) -> bool {
        let guard = epoch::pin();
        self.shards[shard_of(hash)].lookup(&guard, |table, map| {
            let bytes = map.readable();
            table.get(hash, |end| holds_key(bytes, end, key)).is_some()
        })
    }

    /// Applies `changes` in order (so within one batch the last change of
    /// a key wins) and keeps `live` in step; `bytes` is the readable file.
    /// A shard's write lock is held for a few slot updates at a time (see
    /// `UPDATES_PER_LOCK`), so readers wait no longer than that. Only the
    /// store's single writer (or a read-only handle's refresh) calls this.
    pub(crate) fn apply(&self, live: &mut LiveTotals, bytes: &[u8], changes: &[Change<'_>]) {
        // Pinned once for the whole batch, the pins of its write sections
        // cost a counter increment each.
        let _pinned = epoch::pin();
        for window in changes.chunks(APPLY_WINDOW) {
            self.apply_window(live, bytes, window);
        }
    }

    fn apply_window(&self, live: &mut LiveTotals, bytes: &[u8], changes: &[Change<'_>]) {
        let mut replaced = Vec::new();
        if let [change] = changes {
            // A single write: no grouping, nothing to overlap.
            let index = shard_of(change.hash);
            self.make_room(index, 1);
            self.apply_group(index, changes, &[0], &mut replaced);
        } else {
            let order = in_shard_order(changes);
            let groups: Vec<&[usize]> = order
                .chunk_by(|&a, &b| shard_of(changes[a].hash) == shard_of(changes[b].hash))
                .collect();
            // Grow first, then start loading every slot the window will
            // touch, so that the cache misses overlap instead of coming one
            // by one.
            for group in &groups {
                let index = shard_of(changes[group[0]].hash);
                self.make_room(index, group.len());
                let guard = epoch::pin();
                let table = self.shards[index].table(&guard);
                for &i in *group {
                    table.prefetch(changes[i].hash);
                }
            }
            for group in groups {
                let index = shard_of(changes[group[0]].hash);
                self.apply_group(index, changes, group, &mut replaced);
            }
        }
        // Adds first: an entry replaced within the same window was never
        // counted before, and counting it down first would saturate at zero.
        for change in changes.iter().filter(|c| !c.tombstone) {
            live.add_sizes(change.payload_len, change.size);
        }
        for old in replaced {
            live.remove(bytes, old);
        }
    }

    /// Applies `changes[i]` for each `i` in `group` (all of shard `index`);
    /// collects the entry ends they replaced. A write section covers a few
    /// slot updates at a time, so a reader never waits for more.
    fn apply_group(
        &self,
        index: usize,
        changes: &[Change<'_>],
        group: &[usize],
        replaced: &mut Vec<u64>,
    ) {
        for few in group.chunks(UPDATES_PER_LOCK) {
            let section = self.shards[index].write_section();
            let (table, bytes) = (section.table(), section.map().readable());
            for &i in few {
                let change = &changes[i];
                let is_match = |end| holds_key(bytes, end, change.key);
                let old = if change.tombstone {
                    table.remove(change.hash, is_match)
                } else {
                    table.upsert(change.hash, change.end, is_match)
                };
                replaced.extend(old);
            }
        }
    }

    /// The tables, for handing a freshly built index to a store.
    pub(crate) fn into_tables(self) -> Vec<Table> {
        self.shards
            .iter()
            .map(|shard| {
                // SAFETY: `self` is owned, so no thread can reach the shard;
                // the table taken out is replaced by null, which the shard's
                // `Drop` skips.
                unsafe {
                    let guard = epoch::unprotected();
                    let table = shard.table.swap(Shared::null(), Ordering::Relaxed, guard);
                    *table.into_owned().into_box()
                }
            })
            .collect()
    }

    /// Sizes each shard once for a batch that may add a key per hash of
    /// `added` (value entries; some may replace live keys), instead of
    /// letting the shard grow again and again while the batch is applied.
    /// Only shards the batch could at least double are grown: a batch that
    /// mostly replaces keys of a large shard must not inflate it.
    pub(crate) fn reserve(&self, added: impl Iterator<Item = u64>) {
        let mut per_shard = [0usize; SHARDS];
        for hash in added {
            per_shard[shard_of(hash)] += 1;
        }
        for (index, &extra) in per_shard.iter().enumerate() {
            if extra == 0 {
                continue;
            }
            let len = self.shards[index].hold_still().table().len();
            if extra >= len {
                self.make_room(index, extra);
            }
        }
    }

    /// Grows shard `index` if `extra` more keys would overfill it. The copy
    /// is made while readers carry on; the write lock is held only to swap
    /// it in.
    fn make_room(&self, index: usize, extra: usize) {
        let shard = &self.shards[index];
        let grown = {
            let still = shard.hold_still();
            if still.table().has_room(extra) {
                return;
            }
            still.table().grown(extra)
        };
        // Only the writer changes tables, so nothing changed since the copy.
        shard.write_section().swap_table(grown);
        // Old tables add up to half of the new one; free them promptly.
        collect_soon();
    }

    /// Points every shard at a new map of the same file (after it grew).
    pub(crate) fn set_map(&self, map: &Arc<Mapping>) {
        for shard in &self.shards {
            shard.write_section().swap_map(map);
        }
        collect_soon();
    }

    /// Replaces every table and the map (after compaction or a reload).
    pub(crate) fn replace(&self, tables: Vec<Table>, map: &Arc<Mapping>) {
        for (shard, table) in self.shards.iter().zip(tables) {
            let section = shard.write_section();
            section.swap_map(map);
            section.swap_table(table);
        }
        collect_soon();
    }

    /// Number of live keys.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.hold_still().table().len())
            .sum()
    }

    /// Heap bytes held by the index tables.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.hold_still().table().memory_bytes())
            .sum()
    }

    /// Every live entry end, in file order, with a map that covers them all.
    ///
    /// Shards are read without blocking writers (in parallel with the
    /// `parallel` feature). If a compaction swapped files or the file grew
    /// in between, the snapshot is taken again.
    pub(crate) fn snapshot_in_file_order(&self) -> (Arc<Mapping>, LiveEnds) {
        loop {
            let Some((map, keys)) = self.newest_map() else {
                continue;
            };
            let limit = map.readable_len();
            if LiveEnds::dense(limit, keys)
                && let Some(ends) = LiveEnds::from_blocks(limit, |sink| {
                    self.fill_blocks(&map, |end| sink.record(end))
                })
            {
                return (map, ends);
            }
            if let Some(ends) = self.list_ends(&map) {
                return (map, LiveEnds::sorted(ends));
            }
        }
    }

    /// The newest map the shards hold and how many keys they hold, or
    /// `None` while a compaction is swapping files under them.
    fn newest_map(&self) -> Option<(Arc<Mapping>, usize)> {
        let mut newest: Option<Arc<Mapping>> = None;
        let mut keys = 0;
        for shard in &self.shards {
            let shard = shard.hold_still();
            keys += shard.table().len();
            match &newest {
                Some(map) if map.store_id() != shard.map().store_id() => return None,
                // After the file grew, shards briefly hold older, shorter maps of it.
                Some(map) if map.readable_len() >= shard.map().readable_len() => {}
                _ => newest = Some(Arc::clone(shard.map())),
            }
        }
        newest.map(|map| (map, keys))
    }

    /// Hands every shard's ends to `record` (shards in parallel with the
    /// `parallel` feature); returns how many, or `None` if a shard moved to
    /// another file or `record` refused an end (the file grew meanwhile).
    fn fill_blocks(&self, map: &Mapping, record: impl Fn(u64) -> bool + Sync) -> Option<usize> {
        let per_shard = for_each_shard(SHARDS, |index| {
            let shard = self.shards[index].hold_still();
            let same_file = shard.map().store_id() == map.store_id();
            (same_file && shard.table().all_ends(&record)).then_some(shard.table().len())
        });
        per_shard.into_iter().sum()
    }

    /// Every shard's ends, unsorted, or `None` as for `fill_blocks`.
    fn list_ends(&self, map: &Mapping) -> Option<Vec<u64>> {
        let mut ends = Vec::new();
        for shard in &self.shards {
            let shard = shard.hold_still();
            if shard.map().store_id() != map.store_id() {
                return None;
            }
            ends.extend(shard.table().ends());
        }
        let limit = map.readable_len();
        ends.iter().all(|&end| end <= limit).then_some(ends)
    }
}

#[cfg(test)]
mod tests {
    use super::same_bytes;

    #[test]
    fn same_bytes_agrees_with_slice_equality() {
        for len in 0..40usize {
            let a: Vec<u8> = (0..len as u8).collect();
            assert!(same_bytes(&a, &a.clone()), "len {len}");
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x40;
                assert!(!same_bytes(&a, &b), "len {len}, differing at {at}");
            }
            assert!(!same_bytes(&a, &a[..len.saturating_sub(1)]) || len == 0);
        }
    }
}
