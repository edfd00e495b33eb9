//! Borrowed scans: a snapshot of the live entries that lends [`Entry`]s.

use std::sync::Arc;

use mmblob_entry::{Entry, Mapping};

use crate::iter::{PREFETCH_BYTES, prefetch_tail};
use crate::order::LiveEnds;
use crate::store::DataStore;

/// A snapshot of the live entries, in file order, that lends them as
/// [`Entry`]s borrowed from the map for as long as the snapshot lives; see
/// [`DataStore::entries`].
pub struct Entries {
    pub(crate) map: Arc<Mapping>,
    pub(crate) ends: LiveEnds,
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries")
            .field("len", &self.ends.len())
            .finish_non_exhaustive()
    }
}

impl Entries {
    /// How many entries the snapshot holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when it holds none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry, in file order.
    pub fn iter(&self) -> impl Iterator<Item = Entry<'_>> {
        let map = &self.map;
        let bytes = map.readable();
        self.ends.iter().filter_map(move |end| {
            prefetch_tail(bytes, end + PREFETCH_BYTES);
            // Indexed ends point at entries checked when they were indexed.
            Entry::at(map, end).ok()
        })
    }

    /// Every entry, in parallel with rayon: a real rayon iterator that
    /// splits the file into contiguous stretches as rayon asks.
    #[cfg(feature = "parallel")]
    pub fn par_iter(&self) -> impl rayon::iter::ParallelIterator<Item = Entry<'_>> {
        crate::par_iter::Borrowed::new(&self.map, &self.ends)
    }
}

impl DataStore {
    /// A snapshot of the live entries (each key once, newest value, no
    /// deleted keys) that lends them as [`Entry`]s: key, value, typed
    /// views and [`Entry::to_handle`] for the ones to keep. The cheapest
    /// way to scan with an iterator, sequentially or in parallel: no handle
    /// and no reference count per entry. Entries written after the
    /// snapshot are not in it; while it lives, the map it reads stays
    /// mapped.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = mmblob_engine::DataStore::open(dir.path().join("s")).unwrap();
    /// store.write(b"a", b"12").unwrap();
    /// let entries = store.entries();
    /// let total: usize = entries.iter().map(|e| e.len()).sum();
    /// let kept: Vec<mmblob_engine::EntryHandle> =
    ///     entries.iter().filter(|e| e.key() == b"a").map(|e| e.to_handle()).collect();
    /// # assert_eq!((total, kept.len()), (2, 1));
    /// ```
    #[must_use]
    pub fn entries(&self) -> Entries {
        let (map, ends) = self.index.snapshot_in_file_order();
        Entries { map, ends }
    }
}
