//! The in-memory index: key hash → end offset of the newest live entry.
//!
//! Split into 64 shards by the low bits of the hash, each behind its own
//! `RwLock` and padded to its own cache line, so two readers rarely touch the
//! same lock word. Each shard also holds the [`Mapping`] its offsets refer
//! to, so a reader always gets an offset and a map that belong together, even
//! while compaction swaps in a new file. Writers (serialised by the store)
//! hold a shard's write lock only for a few slot updates or a pointer swap;
//! growing a table is done on a copy outside the write lock.
//!
//! A map taken out of a shard is not dropped on the spot but handed to the
//! epoch collector of `crossbeam-epoch`. That lets [`Index::find_pinned`]
//! read a value after releasing the shard lock without taking a reference
//! count: bumping the one count that every reader of a map shares would
//! bounce its cache line between cores on every read.

use std::ops::Range;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crossbeam_epoch as epoch;

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
pub(crate) struct Shard {
    pub(crate) table: Table,
    pub(crate) map: Arc<Mapping>,
}

#[repr(align(128))]
struct Padded(RwLock<Shard>);

/// The sharded index of live keys.
pub(crate) struct Index {
    shards: Box<[Padded]>,
}

/// True when the entry ending at `end` in `bytes` holds `key`.
fn holds_key(bytes: &[u8], end: u64, key: &[u8]) -> bool {
    value_range(bytes, end, key).is_some()
}

/// Where the value of the entry ending at `end` in `bytes` lies, when the
/// entry's key is `key`: `Some(Ok(range))`; `Some(Err(end))` when the key
/// matches but the value lies outside `bytes`; `None` for another key.
fn value_range(bytes: &[u8], end: u64, key: &[u8]) -> Option<Result<Range<usize>, u64>> {
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
    let start = usize::try_from(u64::from_le_bytes(payload_len))
        .ok()
        .and_then(|len| key_start.checked_sub(len));
    Some(start.map(|start| start..key_start).ok_or(end))
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

/// Drops maps taken out of shards once no reader pinned before they left
/// can still be using it (see [`Index::find_pinned`]). Maps are swapped
/// rarely (the file outgrew its reservation, compaction, reload), so the
/// collector is nudged right away: an old file's map, and with it the old
/// file's disk space, is released as soon as its last readers are done.
fn retire(maps: Vec<Arc<Mapping>>) {
    epoch::pin().defer(move || drop(maps));
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
            .map(|table| {
                Padded(RwLock::new(Shard {
                    table,
                    map: Arc::clone(map),
                }))
            })
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

    pub(crate) fn read(&self, shard: usize) -> RwLockReadGuard<'_, Shard> {
        self.shards[shard]
            .0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, shard: usize) -> RwLockWriteGuard<'_, Shard> {
        self.shards[shard]
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The map and entry end of `key`, if it is live.
    pub(crate) fn get(&self, hash: u64, key: &[u8]) -> Option<(Arc<Mapping>, u64)> {
        let shard = self.read(shard_of(hash));
        let bytes = shard.map.readable();
        let end = shard.table.get(hash, |end| holds_key(bytes, end, key))?;
        Some((Arc::clone(&shard.map), end))
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
        guard: &'a epoch::Guard,
    ) -> Option<Result<&'a [u8], u64>> {
        let (map, found) = {
            let shard = self.read(shard_of(hash));
            let bytes = shard.map.readable();
            let mut found = None;
            shard.table.get(hash, |end| {
                found = value_range(bytes, end, key);
                found.is_some()
            })?;
            (Arc::as_ptr(&shard.map), found?)
        };
        let _pinned_for_all_of_a = guard;
        // SAFETY: the pointer came from a live `Arc` in a shard, read while
        // `guard` was pinned (it is pinned for its whole life). A shard's map
        // is only ever released through `retire`, which defers dropping the
        // `Arc` until every thread that was pinned when it left the shard
        // has unpinned. The index cannot be dropped (taking its maps along)
        // while it is borrowed. So the map outlives `'a`.
        let map = unsafe { &*map };
        // The readable part of a map never shrinks, so the range found in it
        // above is still inside it; were it not, that is the entry's end.
        let entry_end = |value: &Range<usize>| (value.end + key.len()) as u64 + TRAILER_LEN;
        Some(found.and_then(|value| map.readable().get(value.clone()).ok_or(entry_end(&value))))
    }

    /// True when `key` is live.
    pub(crate) fn contains(&self, hash: u64, key: &[u8]) -> bool {
        let shard = self.read(shard_of(hash));
        let bytes = shard.map.readable();
        shard
            .table
            .get(hash, |end| holds_key(bytes, end, key))
            .is_some()
    }

    /// Applies `changes` in order (so within one batch the last change of
    /// a key wins) and keeps `live` in step; `bytes` is the readable file.
    /// A shard's write lock is held for a few slot updates at a time (see
    /// `UPDATES_PER_LOCK`), so readers wait no longer than that. Only the
    /// store's single writer (or a read-only handle's refresh) calls this.
    pub(crate) fn apply(&self, live: &mut LiveTotals, bytes: &[u8], changes: &[Change<'_>]) {
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
                let shard = self.read(index);
                for &i in *group {
                    shard.table.prefetch(changes[i].hash);
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
    /// collects the entry ends they replaced. The write lock is taken for a
    /// few slot updates at a time, so a reader never waits for more.
    fn apply_group(
        &self,
        index: usize,
        changes: &[Change<'_>],
        group: &[usize],
        replaced: &mut Vec<u64>,
    ) {
        for few in group.chunks(UPDATES_PER_LOCK) {
            let mut guard = self.write(index);
            let Shard { table, map } = &mut *guard;
            let bytes = map.readable();
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
            .into_vec()
            .into_iter()
            .map(|shard| {
                shard
                    .0
                    .into_inner()
                    .unwrap_or_else(PoisonError::into_inner)
                    .table
            })
            .collect()
    }

    /// Grows shard `index` if `extra` more keys would overfill it. The copy
    /// is made under the read lock (readers carry on); the write lock is
    /// held only to swap it in.
    fn make_room(&self, index: usize, extra: usize) {
        let grown = {
            let shard = self.read(index);
            if shard.table.has_room(extra) {
                return;
            }
            shard.table.grown(extra)
        };
        // Only the writer mutates tables, so nothing changed since the copy.
        let old = std::mem::replace(&mut self.write(index).table, grown);
        drop(old);
    }

    /// Points every shard at a new map of the same file (after it grew).
    pub(crate) fn set_map(&self, map: &Arc<Mapping>) {
        let old = (0..SHARDS)
            .map(|index| std::mem::replace(&mut self.write(index).map, Arc::clone(map)))
            .collect();
        retire(old);
    }

    /// Replaces every table and the map (after compaction or a reload).
    pub(crate) fn replace(&self, tables: Vec<Table>, map: &Arc<Mapping>) {
        let mut old_maps = Vec::with_capacity(SHARDS);
        for (index, table) in tables.into_iter().enumerate() {
            let old_table = {
                let mut shard = self.write(index);
                old_maps.push(std::mem::replace(&mut shard.map, Arc::clone(map)));
                std::mem::replace(&mut shard.table, table)
            };
            drop(old_table);
        }
        retire(old_maps);
    }

    /// Number of live keys.
    pub(crate) fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.read(i).table.len()).sum()
    }

    /// Heap bytes held by the index tables.
    pub(crate) fn memory_bytes(&self) -> usize {
        (0..SHARDS).map(|i| self.read(i).table.memory_bytes()).sum()
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
        for index in 0..SHARDS {
            let shard = self.read(index);
            keys += shard.table.len();
            match &newest {
                Some(map) if map.store_id() != shard.map.store_id() => return None,
                // After the file grew, shards briefly hold older, shorter maps of it.
                Some(map) if map.readable_len() >= shard.map.readable_len() => {}
                _ => newest = Some(Arc::clone(&shard.map)),
            }
        }
        newest.map(|map| (map, keys))
    }

    /// Hands every shard's ends to `record` (shards in parallel with the
    /// `parallel` feature); returns how many, or `None` if a shard moved to
    /// another file or `record` refused an end (the file grew meanwhile).
    fn fill_blocks(&self, map: &Mapping, record: impl Fn(u64) -> bool + Sync) -> Option<usize> {
        let per_shard = for_each_shard(SHARDS, |index| {
            let shard = self.read(index);
            let same_file = shard.map.store_id() == map.store_id();
            (same_file && shard.table.all_ends(&record)).then_some(shard.table.len())
        });
        per_shard.into_iter().sum()
    }

    /// Every shard's ends, unsorted, or `None` as for `fill_blocks`.
    fn list_ends(&self, map: &Mapping) -> Option<Vec<u64>> {
        let mut ends = Vec::new();
        for index in 0..SHARDS {
            let shard = self.read(index);
            if shard.map.store_id() != map.store_id() {
                return None;
            }
            ends.extend(shard.table.ends());
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
