//! Reads and iteration.

use std::sync::Arc;

use mmblob_entry::{EntryHandle, Mapping};

use crate::append::check_key;
use crate::error::Result;
use crate::index::Index;
use crate::store::DataStore;

impl DataStore {
    /// The value stored under `key`, read in place, or `None`.
    ///
    /// Costs one hash, one shard read lock and no system call. A read that
    /// starts after a write returned sees that write or a newer one.
    ///
    /// # Errors
    /// [`Error::InvalidKey`](crate::Error::InvalidKey) for an empty or
    /// oversized key; [`Error::Corrupt`](crate::Error::Corrupt) if the
    /// indexed trailer cannot be read back.
    pub fn read(&self, key: &[u8]) -> Result<Option<EntryHandle>> {
        check_key(key)?;
        match self.index.get(self.hash(key), key) {
            Some((map, end)) => EntryHandle::at(map, end).map(Some),
            None => Ok(None),
        }
    }

    /// [`DataStore::read`] for each key, in order.
    ///
    /// # Errors
    /// The first error of any single read.
    pub fn batch_read(&self, keys: &[&[u8]]) -> Result<Vec<Option<EntryHandle>>> {
        keys.iter().map(|key| self.read(key)).collect()
    }

    /// True when `key` holds a value.
    ///
    /// # Errors
    /// [`Error::InvalidKey`](crate::Error::InvalidKey).
    pub fn exists(&self, key: &[u8]) -> Result<bool> {
        check_key(key)?;
        Ok(self.index.contains(self.hash(key), key))
    }

    /// Number of live keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Heap bytes held by the in-memory index (about 20 per live key after
    /// open; up to 27 while it grows).
    #[must_use]
    pub fn index_memory_bytes(&self) -> usize {
        self.index.memory_bytes()
    }

    /// True when no key holds a value.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live entry once (newest value of each key, no deleted keys), in
    /// no particular order. Entries written while iterating may or may not
    /// be seen.
    #[must_use]
    pub fn iter_entries(&self) -> EntryIter<'_> {
        EntryIter {
            index: &self.index,
            next_shard: 0,
            map: None,
            ends: Vec::new().into_iter(),
        }
    }

    /// The keys of every live entry (copied), in the order of [`DataStore::iter_entries`].
    pub fn keys(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.iter_entries().map(|entry| entry.key().to_vec())
    }

    /// Every live entry once, processed in parallel with rayon.
    #[cfg(feature = "parallel")]
    pub fn par_iter_entries(&self) -> impl rayon::iter::ParallelIterator<Item = EntryHandle> + '_ {
        use rayon::prelude::*;
        (0..Index::shard_count())
            .into_par_iter()
            .flat_map_iter(move |shard| {
                let (map, ends) = self.index.snapshot(shard);
                handles(map, ends)
            })
    }
}

fn handles(map: Arc<Mapping>, ends: Vec<u64>) -> impl Iterator<Item = EntryHandle> {
    // Indexed ends always point at entries checked when they were indexed.
    ends.into_iter()
        .filter_map(move |end| EntryHandle::at(Arc::clone(&map), end).ok())
}

/// Iterator over live entries; see [`DataStore::iter_entries`].
///
/// Takes a snapshot of one index shard at a time, so it holds no lock
/// between items and costs 8 bytes per key of one shard.
pub struct EntryIter<'a> {
    index: &'a Index,
    next_shard: usize,
    map: Option<Arc<Mapping>>,
    ends: std::vec::IntoIter<u64>,
}

impl std::fmt::Debug for EntryIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryIter")
            .field("next_shard", &self.next_shard)
            .finish_non_exhaustive()
    }
}

impl Iterator for EntryIter<'_> {
    type Item = EntryHandle;

    fn next(&mut self) -> Option<EntryHandle> {
        loop {
            if let (Some(end), Some(map)) = (self.ends.next(), &self.map) {
                match EntryHandle::at(Arc::clone(map), end) {
                    Ok(entry) => return Some(entry),
                    Err(_) => continue,
                }
            }
            if self.next_shard == Index::shard_count() {
                return None;
            }
            let (map, ends) = self.index.snapshot(self.next_shard);
            self.next_shard += 1;
            self.map = Some(map);
            self.ends = ends.into_iter();
        }
    }
}
