//! Read sessions: many borrowed reads in a row on one thread.

use crossbeam_epoch as epoch;

use crate::append::check_key;
use crate::error::Result;
use crate::read::unreadable_value;
use crate::store::DataStore;
use mmblob_entry::EntryHandle;

/// A read session on one thread; see [`DataStore::reader`].
///
/// Values come back as plain `&[u8]` slices of the map that live as long
/// as the session. While it lives, a map the store replaces (after the file
/// outgrew its reservation, or compaction) stays mapped, and index tables
/// the store replaces (after they grew, or compaction) stay allocated, so
/// keep sessions for a batch of reads, not for the life of the program.
pub struct Reader<'s> {
    store: &'s DataStore,
    guard: epoch::Guard,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("store", &self.store.path())
            .finish_non_exhaustive()
    }
}

impl DataStore {
    /// Starts a read session: the cheapest way to make many reads on one
    /// thread. Each [`Reader::get`] costs a hash and a lookup that takes no
    /// lock and writes no shared memory, and lends the value straight from
    /// the map, valid until the session ends. Reads see every write that returned before they start.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = mmblob_engine::DataStore::open(dir.path().join("s")).unwrap();
    /// store.write(b"a", b"1").unwrap();
    /// store.write(b"b", b"22").unwrap();
    /// let reader = store.reader();
    /// let (a, b) = (reader.get(b"a").unwrap(), reader.get(b"b").unwrap());
    /// assert_eq!((a, b), (Some(&b"1"[..]), Some(&b"22"[..])));
    /// ```
    #[must_use]
    pub fn reader(&self) -> Reader<'_> {
        Reader {
            store: self,
            guard: epoch::pin(),
        }
    }
}

impl Reader<'_> {
    /// The value stored under `key`, lent from the map for as long as the
    /// session lives, or `None`.
    ///
    /// # Errors
    /// As [`DataStore::read`].
    pub fn get(&self, key: &[u8]) -> Result<Option<&[u8]>> {
        check_key(key)?;
        let store = self.store;
        match store.index.find_pinned(store.hash(key), key, &self.guard) {
            None => store.refuse_damaged_key(key).map(|()| None),
            Some(Ok(value)) => Ok(Some(value)),
            Some(Err(end)) => Err(unreadable_value(end)),
        }
    }

    /// The value stored under `key` as an [`EntryHandle`] that outlives
    /// the session, or `None`: like [`DataStore::read`], but looked up
    /// under the session's epoch pin instead of pinning once per call.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = mmblob_engine::DataStore::open(dir.path().join("s")).unwrap();
    /// store.write(b"a", b"1").unwrap();
    /// let handle = store.reader().get_handle(b"a").unwrap().unwrap();
    /// assert_eq!(&*handle, b"1"); // the session is over, the handle lives on
    /// ```
    ///
    /// # Errors
    /// As [`DataStore::read`].
    pub fn get_handle(&self, key: &[u8]) -> Result<Option<EntryHandle>> {
        check_key(key)?;
        let store = self.store;
        match store.index.locate(store.hash(key), key, &self.guard) {
            Some((map, end)) => EntryHandle::at_in(map, end).map(Some),
            None => Ok(None),
        }
    }
}
