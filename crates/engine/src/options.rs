//! How a store is opened.

use std::path::Path;

use crate::error::Result;
use crate::recovery::KeyHasher;
use crate::store::DataStore;

/// When written bytes are handed to the OS and to stable storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// For bulk loads: bytes reach the OS at the latest when the handle is
    /// dropped or [`DataStore::sync`] is called, and nothing is ever synced
    /// unless asked.
    ///
    /// Since writes are copied into a shared writable map of space reserved
    /// ahead (see [`Durability::Flush`]), handing bytes to the OS costs no
    /// system call any more, so this mode makes the same promise as `Flush`
    /// in practice; what it buys is larger reservation steps (16 MiB at
    /// least instead of 1 MiB), so a bulk load into a small store makes
    /// fewer `fallocate` and `mmap` calls. A clean drop still persists
    /// everything (and trims the reservation).
    None,
    /// Every write call hands its bytes to the OS before it returns: a
    /// process crash loses nothing acknowledged, a power loss may.
    ///
    /// Writes up to 64 MiB are copied into a shared writable map of file
    /// space allocated ahead with `fallocate` (no system call per write; the
    /// page cache keeps the bytes when the process dies, exactly as after a
    /// `pwrite`); larger ones and streams use `pwrite`.
    #[default]
    Flush,
    /// Every write call is on stable storage (`fdatasync`, which also writes
    /// back the pages dirtied through the writable map) before it returns.
    /// Concurrent writers share one sync (group commit). Reserved space is
    /// not faulted in ahead, so a sync writes only the pages written to.
    Sync,
}

/// Options for [`DataStore`], in the style of [`std::fs::OpenOptions`].
///
/// ```
/// # fn main() -> mmblob_engine::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("s.mmblob");
/// use mmblob_engine::{Durability, OpenOptions};
/// let store = OpenOptions::new().durability(Durability::Sync).open(&path)?;
/// store.write(b"k", b"v")?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub(crate) read_only: bool,
    pub(crate) create: bool,
    pub(crate) strict: bool,
    pub(crate) durability: Durability,
    pub(crate) hasher: KeyHasher,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Writable, create if missing, lenient about damage, [`Durability::Flush`].
    #[must_use]
    pub fn new() -> Self {
        OpenOptions {
            read_only: false,
            create: true,
            strict: false,
            durability: Durability::Flush,
            hasher: mmblob_entry::checksum::key_hash,
        }
    }

    /// Open without the write lock; writes fail with [`Error::ReadOnly`](crate::Error::ReadOnly).
    /// Read-only handles never create or change the file.
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Create the store when the file is missing (default `true`).
    #[must_use]
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Refuse to open a store with any damage. Checks every checksum at open,
    /// which costs time proportional to the file size, and refuses with
    /// [`Error::Corrupt`](crate::Error::Corrupt) before changing anything:
    /// a refused store is left byte for byte as it was. Bytes of an
    /// interrupted write after the last complete entry are not damage: they
    /// are cut (writable handle) once the check passed. Without `strict`,
    /// reads never check checksums; see [`DataStore::verify`](crate::DataStore::verify).
    #[must_use]
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// When writes reach the OS and stable storage (default [`Durability::Flush`]).
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Opens the store at `path` with these options.
    ///
    /// # Errors
    /// See [`DataStore::open`].
    pub fn open(&self, path: impl AsRef<Path>) -> Result<DataStore> {
        DataStore::open_with(path.as_ref(), self)
    }

    #[cfg(test)]
    pub(crate) fn key_hasher(mut self, hasher: KeyHasher) -> Self {
        self.hasher = hasher;
        self
    }
}
