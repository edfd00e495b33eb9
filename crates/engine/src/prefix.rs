//! Listing the live keys and entries that start with a prefix.
//!
//! The index is a hash table, so a prefix listing scans the key of every
//! live entry (a few bytes before each trailer, in file order) and builds a
//! handle only for the ones that match. With the `parallel` feature a large
//! store is scanned on all cores.

use std::sync::Arc;

use mmblob_entry::{EntryHandle, Mapping};

use crate::recovery::key_in;
use crate::store::DataStore;

/// Live entries below which a scan stays on the calling thread.
#[cfg(feature = "parallel")]
const PARALLEL_FROM: usize = 1 << 16;

/// Iterator over the live entries whose key starts with a prefix, in file
/// order; see [`DataStore::entries_with_prefix`].
pub struct PrefixIter {
    map: Arc<Mapping>,
    ends: std::vec::IntoIter<u64>,
}

impl std::fmt::Debug for PrefixIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixIter")
            .field("remaining", &self.ends.len())
            .finish_non_exhaustive()
    }
}

impl Iterator for PrefixIter {
    type Item = EntryHandle;

    fn next(&mut self) -> Option<EntryHandle> {
        let map = &self.map;
        self.ends
            .by_ref()
            .find_map(|end| EntryHandle::at(Arc::clone(map), end).ok())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.ends.len()))
    }
}

impl DataStore {
    /// The ends (in file order) of the live entries whose key starts with
    /// `prefix`, and the map they lie in.
    fn ends_with_prefix(&self, prefix: &[u8]) -> (Arc<Mapping>, Vec<u64>) {
        let (map, ends) = self.index.snapshot_in_file_order();
        let bytes = map.readable();
        let matches = |end: &u64| key_in(bytes, *end).is_some_and(|key| key.starts_with(prefix));
        #[cfg(feature = "parallel")]
        if ends.len() >= PARALLEL_FROM {
            use rayon::prelude::*;
            let found: Vec<u64> = ends
                .par_pieces()
                .flat_map_iter(|piece| piece.filter(matches).collect::<Vec<u64>>())
                .collect();
            return (map, found);
        }
        let found: Vec<u64> = ends.iter().filter(matches).collect();
        (map, found)
    }

    /// How many live keys start with `prefix` (a scan of the live keys).
    pub(crate) fn count_with_prefix(&self, prefix: &[u8]) -> usize {
        if prefix.is_empty() {
            return self.len();
        }
        self.ends_with_prefix(prefix).1.len()
    }

    /// The live keys that start with `prefix` (copied), in file order.
    ///
    /// Keys written after the call starts are not seen. Scans the key of
    /// every live entry (in parallel for large stores), reading no values.
    /// Keys of [namespaces](DataStore::namespace) are seen in their stored
    /// form, which starts with the 8-byte `namespace::NAMESPACE_TAG`.
    pub fn keys_with_prefix(&self, prefix: &[u8]) -> impl Iterator<Item = Vec<u8>> + use<> {
        let (map, ends) = self.ends_with_prefix(prefix);
        ends.into_iter()
            .filter_map(move |end| key_in(map.readable(), end).map(<[u8]>::to_vec))
    }

    /// The live entries whose key starts with `prefix`, in file order, as
    /// handles; like [`DataStore::keys_with_prefix`], only matching entries
    /// are read.
    #[must_use]
    pub fn entries_with_prefix(&self, prefix: impl AsRef<[u8]>) -> PrefixIter {
        let prefix = prefix.as_ref();
        let (map, ends) = self.ends_with_prefix(prefix);
        PrefixIter {
            map,
            ends: ends.into_iter(),
        }
    }

    /// [`DataStore::entries_with_prefix`] processed in parallel with rayon.
    #[cfg(feature = "parallel")]
    pub fn par_entries_with_prefix(
        &self,
        prefix: &[u8],
    ) -> impl rayon::iter::ParallelIterator<Item = EntryHandle> + use<> {
        use rayon::prelude::*;
        let (map, ends) = self.ends_with_prefix(prefix);
        ends.into_par_iter()
            .filter_map(move |end| EntryHandle::at(Arc::clone(&map), end).ok())
    }
}
