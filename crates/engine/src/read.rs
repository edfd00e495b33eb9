//! Point reads.

use mmblob_entry::EntryHandle;

use crate::append::check_key;
use crate::error::Result;
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

    /// True when no key holds a value.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by the in-memory index (about 20 per live key after
    /// open; up to 27 while it grows).
    #[must_use]
    pub fn index_memory_bytes(&self) -> usize {
        self.index.memory_bytes()
    }
}
