//! The one error type of mmblob.

use std::io;
use std::path::PathBuf;

/// `Result` with mmblob's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way an mmblob operation can fail.
///
/// Each variant carries what a person needs to act on it: the path, the key,
/// the offset. Convert to [`std::io::Error`] with `From` when an `io::Result`
/// is wanted; [`Error::kind`] tells which `io::ErrorKind` that will be.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What mmblob was doing, with the path where one applies.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file exists but is not an mmblob store; it was left untouched.
    #[error("{path}: not an mmblob store ({reason}); the file was left unchanged")]
    NotAStore {
        /// The file that was opened.
        path: PathBuf,
        /// Why it was not recognised.
        reason: String,
    },
    /// The store was written by a format version this build cannot read.
    #[error(
        "{path}: store format version {found} is not supported (this build reads version {supported}); \
         upgrade mmblob to open it"
    )]
    UnsupportedVersion {
        /// The store file.
        path: PathBuf,
        /// Version found in the header.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
    /// Another handle (in this or another process) holds the store's write lock.
    #[error(
        "{path}: locked by another writer; close it first, or open with OpenOptions::read_only(true)"
    )]
    Locked {
        /// The store file.
        path: PathBuf,
    },
    /// A write was attempted through a read-only handle.
    #[error("{path}: opened read-only, cannot {operation}")]
    ReadOnly {
        /// The store file.
        path: PathBuf,
        /// The refused operation.
        operation: &'static str,
    },
    /// A key is empty or longer than 65,535 bytes.
    #[error("invalid key of {len} bytes: keys must be 1..=65535 bytes long")]
    InvalidKey {
        /// Length of the rejected key.
        len: usize,
    },
    /// A value is longer than the format can describe (2^63 bytes).
    #[error("value of {len} bytes is too large (at most 2^63 bytes)")]
    ValueTooLarge {
        /// Length of the rejected value.
        len: u64,
    },
    /// A key that the operation needs does not exist.
    #[error("key not found: {}", crate::display_key(key))]
    KeyNotFound {
        /// The missing key.
        key: Vec<u8>,
    },
    /// The store file does not exist and `create(false)` was asked for.
    #[error("{path}: no such store (open with create(true), the default, to make one)")]
    StoreNotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// The path names a directory or another non-regular file.
    #[error("{path}: not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Bytes in the store are damaged.
    #[error("damaged store data at offset {offset}: {reason}")]
    Corrupt {
        /// File offset of the damage.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A checksum did not match the bytes it covers.
    #[error("checksum mismatch at offset {offset}: stored {expected:#010x}, computed {got:#010x}")]
    ChecksumMismatch {
        /// File offset of the entry's trailer.
        offset: u64,
        /// The checksum stored in the file.
        expected: u32,
        /// The checksum of the bytes as they are now.
        got: u32,
    },
    /// A value cannot be viewed as a slice of the requested element type.
    #[error(
        "cannot view {len} bytes as [{type_name}]: length must be a multiple of {size} \
         and the start aligned to {align}"
    )]
    TypedView {
        /// Payload length in bytes.
        len: usize,
        /// Element type name.
        type_name: &'static str,
        /// `size_of` the element type.
        size: usize,
        /// `align_of` the element type.
        align: usize,
    },
    /// Source and target of a copy or transfer are the same store.
    #[error("source and target are the same store ({path})")]
    SameStore {
        /// The store file.
        path: PathBuf,
    },
    /// A store handle was asked to do something its state does not allow.
    #[error("{0}")]
    InvalidOperation(String),
    /// A namespace name is empty, too long or holds a control character.
    #[error("invalid namespace name {name:?}: {reason}")]
    InvalidNamespace {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key inside a namespace is empty, or too long once the namespace
    /// marker and name are put in front of it.
    #[error(
        "invalid key of {len} bytes in namespace {namespace:?}: keys in this namespace must be 1..={max} bytes long"
    )]
    InvalidNamespaceKey {
        /// The namespace.
        namespace: String,
        /// Length of the rejected key.
        len: usize,
        /// The longest key this namespace can hold.
        max: usize,
    },
    /// A plain key has the reserved form of a namespaced key (the 8-byte tag
    /// `FF 00 "mmblns"`, a length byte and a valid namespace name in front
    /// of more bytes), so
    /// writing it would write into that namespace.
    #[error(
        "the plain key {} has the reserved form of a key in namespace {namespace:?}; \
         write it through store.namespace({namespace:?}) instead, or use a key that does not start with the namespace tag (bytes ff 00 6d 6d 62 6c 6e 73)",
        crate::display_key(key)
    )]
    ReservedKey {
        /// The rejected key.
        key: Vec<u8>,
        /// The namespace whose key it would be.
        namespace: String,
    },
    /// A backup or copy destination holds something that is not an earlier
    /// copy of this store; it was left unchanged.
    #[error("{path}: {reason}; it was left unchanged")]
    DestinationInUse {
        /// The destination.
        path: PathBuf,
        /// What is there.
        reason: String,
    },
}

impl Error {
    /// Wraps an `io::Error` with a description of what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The `io::ErrorKind` this error maps to when converted to `io::Error`.
    #[must_use]
    pub fn kind(&self) -> io::ErrorKind {
        use io::ErrorKind as K;
        match self {
            Error::Io { source, .. } => source.kind(),
            Error::KeyNotFound { .. } | Error::StoreNotFound { .. } => K::NotFound,
            Error::Locked { .. } => K::WouldBlock,
            Error::ReadOnly { .. } => K::PermissionDenied,
            Error::InvalidKey { .. }
            | Error::ValueTooLarge { .. }
            | Error::TypedView { .. }
            | Error::SameStore { .. }
            | Error::NotAFile { .. }
            | Error::InvalidOperation(_)
            | Error::InvalidNamespace { .. }
            | Error::InvalidNamespaceKey { .. }
            | Error::ReservedKey { .. } => K::InvalidInput,
            Error::DestinationInUse { .. } => K::AlreadyExists,
            Error::NotAStore { .. }
            | Error::UnsupportedVersion { .. }
            | Error::Corrupt { .. }
            | Error::ChecksumMismatch { .. } => K::InvalidData,
        }
    }

    /// True for errors that mean "no such key" or "no such store".
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.kind() == io::ErrorKind::NotFound
    }
}

/// Lets `?` carry I/O errors of your own code (streams, files) into an mmblob `Result`.
impl From<io::Error> for Error {
    fn from(source: io::Error) -> Self {
        Error::Io {
            context: "I/O error".into(),
            source,
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        io::Error::new(err.kind(), err)
    }
}
