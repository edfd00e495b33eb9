//! Closing a store and seeing the errors a drop would swallow.

use crate::error::Result;
use crate::store::DataStore;

impl DataStore {
    /// Closes the store: puts every write on stable storage, saves the
    /// index sidecar of a large store and releases the write lock, and
    /// returns the first error of these steps (dropping the store does the
    /// same work but can only log errors). Handles taken from the store stay
    /// valid. Closing a read-only handle does nothing that can fail.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) when the final sync or the sidecar
    /// write fails; the lock is released all the same.
    pub fn close(self) -> Result<()> {
        if self.is_read_only() {
            return Ok(());
        }
        let synced = self.sync();
        let saved = self.try_save_snapshot();
        // Dropping releases the lock; the sidecar is not stale any more, so
        // the drop does not write it a second time.
        drop(self);
        synced.and(saved)
    }
}
