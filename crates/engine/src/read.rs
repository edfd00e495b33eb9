//! Point reads.

use mmblob_entry::EntryHandle;
use mmblob_entry::format::TRAILER_LEN;

use crate::append::check_key;
use crate::error::{Error, Result};
use crate::store::DataStore;

impl DataStore {
    /// The value stored under `key`, read in place, or `None`.
    ///
    /// Costs one hash, one lock-free index lookup and no system call. The
    /// handle counts on the calling thread's lease on the map (see
    /// [`EntryHandle`]), so reads on many threads write no shared memory;
    /// [`DataStore::reader`] lends slices without any handle at all. A read
    /// that starts after a write returned sees that write or a newer one.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an empty or oversized key;
    /// [`Error::Corrupt`] if the indexed trailer cannot be read back, or if
    /// the newest entry of `key` is known to be damaged (found at open or by
    /// [`DataStore::verify`]; see [`DataStore::damaged_keys`]).
    ///
    /// A read does not check the value's checksum: that would cost a pass
    /// over every byte read. [`EntryHandle::verify_checksum`] checks one
    /// value, [`DataStore::verify`] every entry, and
    /// [`OpenOptions::strict`](crate::OpenOptions::strict) every entry at open.
    pub fn read(&self, key: impl AsRef<[u8]>) -> Result<Option<EntryHandle>> {
        let key = key.as_ref();
        check_key(key)?;
        let guard = crossbeam_epoch::pin();
        self.read_hashed(self.hash(key), key, &guard)
    }

    /// [`DataStore::read`] of a checked key whose hash is `hash`.
    #[inline]
    fn read_hashed(
        &self,
        hash: u64,
        key: &[u8],
        guard: &crossbeam_epoch::Guard,
    ) -> Result<Option<EntryHandle>> {
        match self.index.locate(hash, key, guard) {
            Some((map, end)) => EntryHandle::at_in(map, end).map(Some),
            None => self.refuse_damaged_key(key).map(|()| None),
        }
    }

    /// Calls `f` with the value stored under `key`, borrowed straight from
    /// the map, and returns what `f` returns; `Ok(None)` if `key` holds no
    /// value.
    ///
    /// The cheapest way to read: no handle is built and no shared reference
    /// count is touched, so readers on many threads do not slow each other
    /// down. No lock is held while `f` runs; `f` may use the store.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = mmblob_engine::DataStore::open(dir.path().join("s")).unwrap();
    /// store.write(b"k", b"hello").unwrap();
    /// assert_eq!(store.read_with(b"k", <[u8]>::len).unwrap(), Some(5));
    /// assert_eq!(store.read_with(b"nope", <[u8]>::len).unwrap(), None);
    /// ```
    ///
    /// # Errors
    /// As [`DataStore::read`].
    pub fn read_with<R>(
        &self,
        key: impl AsRef<[u8]>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>> {
        let key = key.as_ref();
        check_key(key)?;
        let found = self.index.with_value(self.hash(key), key, f);
        match found {
            None => self.refuse_damaged_key(key).map(|()| None),
            Some(Ok(result)) => Ok(Some(result)),
            Some(Err(end)) => Err(unreadable_value(end)),
        }
    }

    /// [`DataStore::read`] for each key, in order. Faster than reading one
    /// by one: the index slots and entries of a few dozen keys at a time are
    /// loaded together, so their cache misses overlap.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] if any key is invalid (nothing is read);
    /// otherwise the first error of any single read.
    pub fn batch_read(&self, keys: &[&[u8]]) -> Result<Vec<Option<EntryHandle>>> {
        /// Keys whose memory is requested at once: enough to overlap many
        /// misses, few enough that their lines stay in the first-level cache.
        const WINDOW: usize = 32;
        for key in keys {
            check_key(key)?;
        }
        // Pinned once for the whole call; the handles count on this
        // thread's lease, so the batch writes no shared memory.
        let pinned = crossbeam_epoch::pin();
        let mut handles = Vec::with_capacity(keys.len());
        let mut hashes = [0u64; WINDOW];
        for window in keys.chunks(WINDOW) {
            let hashes = &mut hashes[..window.len()];
            for (hash, key) in hashes.iter_mut().zip(window) {
                *hash = self.hash(key);
            }
            self.index.prefetch(hashes);
            for (&hash, key) in hashes.iter().zip(window) {
                handles.push(self.read_hashed(hash, key, &pinned)?);
            }
        }
        Ok(handles)
    }

    /// True when `key` holds a value.
    ///
    /// # Errors
    /// [`Error::InvalidKey`].
    pub fn exists(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
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

    /// Bytes held by the in-memory index tables: about 20 per live key
    /// after open (for a large store mapped copy-on-write from its index
    /// sidecar, so file-backed until written), up to about 30 right after a
    /// table grows.
    #[must_use]
    pub fn index_memory_bytes(&self) -> usize {
        self.index.memory_bytes()
    }
}

/// The error for an indexed entry ending at `end` whose trailer points its
/// value outside the file (damage in a part of the file the index was
/// loaded for without reading it).
pub(crate) fn unreadable_value(end: u64) -> Error {
    Error::Corrupt {
        offset: end.saturating_sub(TRAILER_LEN),
        reason: "the indexed entry's trailer puts its value outside the file".to_owned(),
    }
}
