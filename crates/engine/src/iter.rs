//! Iteration over live entries, in file order.
//!
//! Every way to iterate starts from one snapshot of the live entry offsets,
//! put into file order (see `order.rs`) so that a scan reads the map front
//! to back instead of jumping around it. Entries written after the snapshot
//! are not seen; entries deleted after it are (their bytes stay valid).

use std::sync::Arc;

use mmblob_entry::format::TRAILER_LEN;
use mmblob_entry::{EntryHandle, Mapping, prefetch};

use crate::order::LiveEnds;
use crate::store::DataStore;

/// Iterator over live entries; see [`DataStore::iter_entries`].
pub struct EntryIter {
    map: Arc<Mapping>,
    ends: OwnedEnds,
}

impl std::fmt::Debug for EntryIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryIter")
            .field("remaining", &self.ends.remaining)
            .finish_non_exhaustive()
    }
}

impl Iterator for EntryIter {
    type Item = EntryHandle;

    #[inline]
    fn next(&mut self) -> Option<EntryHandle> {
        // Indexed ends always point at entries checked when they were indexed.
        let map = &self.map;
        let bytes = map.readable();
        self.ends.find_map(|end| {
            prefetch_tail(bytes, end + PREFETCH_BYTES);
            EntryHandle::at_in(map, end).ok()
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.ends.remaining))
    }
}

/// A snapshot's ends, owned, yielded in order.
struct OwnedEnds {
    ends: LiveEnds,
    cursor: usize,
    remaining: usize,
}

impl OwnedEnds {
    fn new(ends: LiveEnds) -> Self {
        let remaining = ends.len();
        OwnedEnds {
            ends,
            cursor: 0,
            remaining,
        }
    }
}

impl Iterator for OwnedEnds {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let end = self.ends.next_at(&mut self.cursor)?;
        self.remaining = self.remaining.saturating_sub(1);
        Some(end)
    }
}

/// `(key, value)` of the indexed entry ending at `end` in `bytes`.
fn parts(bytes: &[u8], end: u64) -> Option<(&[u8], &[u8])> {
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

/// How far ahead of the entry being read a walk asks the CPU to fetch:
/// about sixteen small entries, enough to cover a cache miss.
pub(crate) const PREFETCH_BYTES: u64 = 2048;

/// Folds `f` over the entries ending at `ends` (in file order) in `bytes`.
/// Walks are bound by memory latency, not bandwidth: the hardware
/// prefetcher loses the stream at every 4 KiB page, so the walk prefetches
/// the file a little ahead of itself.
pub(crate) fn walk<T>(
    bytes: &[u8],
    ends: impl Iterator<Item = u64>,
    init: T,
    mut f: impl FnMut(T, &[u8], &[u8]) -> T,
) -> T {
    let mut acc = init;
    for end in ends {
        prefetch_tail(bytes, end + PREFETCH_BYTES);
        if let Some((key, value)) = parts(bytes, end) {
            acc = f(acc, key, value);
        }
    }
    acc
}

/// Prefetches the line holding byte `end - 1` and the one before it: for
/// an entry ending there, its trailer and its key (and, for small values,
/// its payload).
pub(crate) fn prefetch_tail(bytes: &[u8], end: u64) {
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
            ends: OwnedEnds::new(ends),
        }
    }

    /// The keys of every live entry (copied), in file order.
    pub fn keys(&self) -> impl Iterator<Item = Vec<u8>> + use<> {
        let (map, ends) = self.index.snapshot_in_file_order();
        OwnedEnds::new(ends).filter_map(move |end| {
            let bytes = map.readable();
            prefetch_tail(bytes, end + PREFETCH_BYTES);
            parts(bytes, end).map(|(key, _)| key.to_vec())
        })
    }

    /// Calls `f(key, value)` for every live entry, in file order, with
    /// slices borrowed from the map: the fastest way to scan a store (no
    /// handle, no reference counting per entry). `f` runs on the calling
    /// thread; with the `parallel` feature the snapshot of the index that
    /// the scan starts from is taken on all cores.
    pub fn for_each_entry(&self, mut f: impl FnMut(&[u8], &[u8])) {
        let (map, ends) = self.index.snapshot_in_file_order();
        walk(map.readable(), ends.iter(), (), |(), key, value| {
            f(key, value)
        });
    }

    /// Every live entry once, processed in parallel with rayon, as handles
    /// that own their bytes.
    ///
    /// A real rayon iterator: it splits the snapshot of the index into
    /// contiguous stretches of the file as rayon asks (no list of entries
    /// is copied first), so it composes with `filter`, `map`, `fold`,
    /// `collect` and the rest. Each stretch counts its handles on a lease
    /// of the thread that runs it, so threads share no reference count.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = mmblob_engine::DataStore::open(dir.path().join("s")).unwrap();
    /// # store.write(b"a", b"12").unwrap();
    /// use rayon::prelude::*;
    /// let total: usize = store.par_iter_entries().map(|e| e.len()).sum();
    /// # assert_eq!(total, 2);
    /// ```
    #[cfg(feature = "parallel")]
    #[must_use]
    pub fn par_iter_entries(&self) -> crate::par_iter::ParEntryIter {
        let (map, ends) = self.index.snapshot_in_file_order();
        crate::par_iter::ParEntryIter::new(map, ends)
    }

    /// [`DataStore::for_each_entry`] in parallel with rayon.
    #[cfg(feature = "parallel")]
    pub fn par_for_each_entry(&self, f: impl Fn(&[u8], &[u8]) + Sync + Send) {
        use rayon::prelude::*;
        let (map, ends) = self.index.snapshot_in_file_order();
        let bytes = map.readable();
        ends.par_pieces()
            .for_each(|piece| walk(bytes, piece, (), |(), key, value| f(key, value)));
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
        ends.par_pieces()
            .map(|piece| walk(bytes, piece, identity(), &fold))
            .reduce(&identity, reduce)
    }
}
