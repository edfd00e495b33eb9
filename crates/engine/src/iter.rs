//! Iteration over live entries, in file order.
//!
//! Every way to iterate starts from one snapshot of the live entry offsets
//! (8 bytes per key), sorted into file order so that a scan reads the map
//! front to back instead of jumping around it. Entries written after the
//! snapshot are not seen; entries deleted after it are (their bytes stay
//! valid).

use std::sync::Arc;

use mmblob_entry::format::TRAILER_LEN;
use mmblob_entry::{EntryHandle, Mapping, prefetch};

use crate::store::DataStore;

/// Iterator over live entries; see [`DataStore::iter_entries`].
pub struct EntryIter {
    map: Arc<Mapping>,
    ends: std::vec::IntoIter<u64>,
}

impl std::fmt::Debug for EntryIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryIter")
            .field("remaining", &self.ends.len())
            .finish_non_exhaustive()
    }
}

impl Iterator for EntryIter {
    type Item = EntryHandle;

    fn next(&mut self) -> Option<EntryHandle> {
        // Indexed ends always point at entries checked when they were indexed.
        self.ends
            .find_map(|end| EntryHandle::at(Arc::clone(&self.map), end).ok())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.ends.len()))
    }
}

/// `(key, value)` of the indexed entry ending at `end` in `bytes`.
pub(crate) fn parts(bytes: &[u8], end: u64) -> Option<(&[u8], &[u8])> {
    let end = usize::try_from(end).ok()?;
    let trailer = bytes.get(end.checked_sub(TRAILER_LEN as usize)?..end)?;
    let payload_len = usize::try_from(u64::from_le_bytes(trailer[16..24].try_into().ok()?)).ok()?;
    let key_len = usize::from(u16::from_le_bytes([trailer[24], trailer[25]]));
    let key_start = end.checked_sub(TRAILER_LEN as usize + key_len)?;
    let payload_start = key_start.checked_sub(payload_len)?;
    Some((
        bytes.get(key_start..key_start + key_len)?,
        bytes.get(payload_start..key_start)?,
    ))
}

/// How many entries ahead of the one being read a walk asks the CPU to
/// fetch: enough to cover a cache miss, few enough to stay in cache.
const PREFETCH_AHEAD: usize = 16;

/// Folds `f` over the entries ending at `ends` (in file order) in `bytes`.
/// Walks are bound by memory latency, not bandwidth: the hardware
/// prefetcher loses the stream at every 4 KiB page, so the walk prefetches
/// the lines of the entries a few steps ahead itself.
fn walk<T>(bytes: &[u8], ends: &[u64], init: T, mut f: impl FnMut(T, &[u8], &[u8]) -> T) -> T {
    let mut acc = init;
    for (i, &end) in ends.iter().enumerate() {
        if let Some(&ahead) = ends.get(i + PREFETCH_AHEAD) {
            prefetch_tail(bytes, ahead);
        }
        if let Some((key, value)) = parts(bytes, end) {
            acc = f(acc, key, value);
        }
    }
    acc
}

/// Prefetches the trailer of the entry ending at `end` and the line before
/// it, which holds the key and, for small values, the payload.
fn prefetch_tail(bytes: &[u8], end: u64) {
    let Ok(end) = usize::try_from(end) else {
        return;
    };
    for back in [1, TRAILER_LEN as usize + 64] {
        if let Some(byte) = end.checked_sub(back).and_then(|i| bytes.get(i)) {
            prefetch(byte);
        }
    }
}

impl DataStore {
    /// Every live entry once (the newest value of each key, no deleted
    /// keys), in file order, as handles that own their bytes.
    #[must_use]
    pub fn iter_entries(&self) -> EntryIter {
        let (map, ends) = self.index.snapshot_in_file_order();
        EntryIter {
            map,
            ends: ends.into_iter(),
        }
    }

    /// The keys of every live entry (copied), in file order.
    pub fn keys(&self) -> impl Iterator<Item = Vec<u8>> + use<> {
        let (map, ends) = self.index.snapshot_in_file_order();
        ends.into_iter()
            .filter_map(move |end| parts(map.readable(), end).map(|(key, _)| key.to_vec()))
    }

    /// Calls `f(key, value)` for every live entry, in file order, with
    /// slices borrowed from the map: the fastest way to scan a store (no
    /// handle, no reference counting per entry).
    pub fn for_each_entry(&self, mut f: impl FnMut(&[u8], &[u8])) {
        let (map, ends) = self.index.snapshot_in_file_order();
        walk(map.readable(), &ends, (), |(), key, value| f(key, value));
    }

    /// Every live entry once, processed in parallel with rayon; each thread
    /// takes contiguous stretches of the file.
    #[cfg(feature = "parallel")]
    pub fn par_iter_entries(
        &self,
    ) -> impl rayon::iter::ParallelIterator<Item = EntryHandle> + use<> {
        use rayon::prelude::*;
        let (map, ends) = self.index.snapshot_in_file_order();
        ends.into_par_iter()
            .filter_map(move |end| EntryHandle::at(Arc::clone(&map), end).ok())
    }

    /// [`DataStore::for_each_entry`] in parallel with rayon.
    #[cfg(feature = "parallel")]
    pub fn par_for_each_entry(&self, f: impl Fn(&[u8], &[u8]) + Sync + Send) {
        use rayon::prelude::*;
        let (map, ends) = self.index.snapshot_in_file_order();
        let bytes = map.readable();
        ends.par_chunks(4096)
            .for_each(|chunk| walk(bytes, chunk, (), |(), key, value| f(key, value)));
    }

    /// Folds every live entry in parallel with rayon, borrowing key and
    /// value from the map: each task folds a contiguous stretch of the file
    /// with `fold`, starting from `identity()`, and `reduce` combines the
    /// partial results. The fastest way to compute over a whole store.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = mmblob_engine::DataStore::open(dir.path().join("s")).unwrap();
    /// # store.write(b"a", b"12").unwrap();
    /// let bytes = store.par_fold_entries(|| 0usize, |n, _key, value| n + value.len(), |a, b| a + b);
    /// # assert_eq!(bytes, 2);
    /// ```
    #[cfg(feature = "parallel")]
    pub fn par_fold_entries<T: Send>(
        &self,
        identity: impl Fn() -> T + Sync + Send,
        fold: impl Fn(T, &[u8], &[u8]) -> T + Sync + Send,
        reduce: impl Fn(T, T) -> T + Sync + Send,
    ) -> T {
        use rayon::prelude::*;
        let (map, ends) = self.index.snapshot_in_file_order();
        let bytes = map.readable();
        ends.par_chunks(4096)
            .map(|chunk| walk(bytes, chunk, identity(), &fold))
            .reduce(&identity, reduce)
    }
}
