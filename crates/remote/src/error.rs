//! The one error type of the remote crate.

use std::path::PathBuf;

/// `Result` of every fallible call in this crate.
pub type Result<T, E = RemoteError> = std::result::Result<T, E>;

/// Why a push, a pull or a follower failed.
///
/// Every variant says what to do next in its message. A failed push or pull
/// never changes the local store and never leaves the remote without a valid
/// manifest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The object store refused a request or could not be reached (wrong
    /// credentials, unreachable endpoint, missing bucket, ...).
    #[error(
        "object store: {operation} {location} failed: {source}; check the URL, the endpoint \
         and the credentials (AWS_* environment variables)"
    )]
    Store {
        /// What was being done (`"uploading"`, `"reading"`, ...).
        operation: &'static str,
        /// The object or prefix concerned.
        location: String,
        /// The object store's error.
        #[source]
        source: object_store::Error,
    },
    /// The object store refused the credentials (HTTP 401/403).
    #[error(
        "object store refused access while {operation} {location}: {source}; check the \
         credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the bucket's permissions"
    )]
    AccessDenied {
        /// What was being done.
        operation: &'static str,
        /// The object or prefix concerned.
        location: String,
        /// The object store's error.
        #[source]
        source: object_store::Error,
    },
    /// The local store failed.
    #[error("local store: {0}")]
    Local(#[from] mmblob_engine::Error),
    /// A local file could not be read or written.
    #[error("{doing} {}: {source}", path.display())]
    Io {
        /// What was being done.
        doing: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The store file has no header yet (a read-only handle of a file that
    /// was empty when opened): there is nothing to push.
    #[error("{} holds no store yet: nothing to push (refresh the handle after the first write)", path.display())]
    EmptyStore {
        /// The store file.
        path: PathBuf,
    },
    /// Nothing has been pushed under this prefix yet.
    #[error(
        "no manifest at {location}: nothing has been pushed there yet (run `mmblob push` first)"
    )]
    NoManifest {
        /// Where the manifest was looked for.
        location: String,
    },
    /// The manifest object is not one this version can read, or is damaged.
    #[error(
        "manifest {location} is unreadable: {reason}; it was left as it is (push from the \
         writer to replace it, or use another prefix)"
    )]
    BadManifest {
        /// The manifest object.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A downloaded segment does not have the length or checksum the manifest gives.
    #[error(
        "segment {location} does not match the manifest ({reason}); nothing was applied to \
         the replica"
    )]
    BadSegment {
        /// The segment object.
        location: String,
        /// What differs.
        reason: String,
    },
    /// An entry in the downloaded bytes fails its checksum or structure check.
    #[error(
        "entry ending at offset {offset} of store {store_id:016x} is damaged in the remote \
         copy ({reason}); nothing was applied to the replica"
    )]
    CorruptEntry {
        /// End offset of the damaged entry in the store file.
        offset: u64,
        /// Store id (generation) of the remote copy.
        store_id: u64,
        /// What check failed.
        reason: String,
    },
    /// The local store and the remote copy of the same store id disagree: the
    /// local file does not extend what the manifest holds (or the replica is
    /// ahead of it).
    #[error(
        "store {store_id:016x}: the local file ({local_end} bytes) and the remote copy \
         ({remote_end} bytes) have diverged; push to a new prefix, or delete the replica and \
         pull again"
    )]
    Diverged {
        /// Store id both sides carry.
        store_id: u64,
        /// Logical end of the local file.
        local_end: u64,
        /// End of the remote copy.
        remote_end: u64,
    },
    /// The pull destination exists and is not a replica of this remote store.
    #[error(
        "{} is not a replica of the store at {location} ({reason}); it was left unchanged: \
         choose another destination",
        path.display()
    )]
    NotAReplica {
        /// The destination.
        path: PathBuf,
        /// The remote prefix.
        location: String,
        /// Why it is not one.
        reason: String,
    },
    /// Another process holds the replica's write lock.
    #[error(
        "{} is locked by another process (a writer or another pull); wait for it, or pull \
         into another destination",
        path.display()
    )]
    Locked {
        /// The replica.
        path: PathBuf,
    },
    /// A URL that names no object store this build can reach.
    #[error("invalid remote URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A blocking call (`push`, `pull`) was made from inside an async runtime.
    #[error(
        "{operation} was called from inside an async runtime; call {operation}_async there \
         instead"
    )]
    InsideRuntime {
        /// The blocking function called.
        operation: &'static str,
    },
    /// The background thread of a `Pusher` or `Follower` is gone.
    #[error("the background {what} thread stopped unexpectedly")]
    WorkerGone {
        /// `"pusher"` or `"follower"`.
        what: &'static str,
    },
}

impl RemoteError {
    /// Wraps an object store error, telling refused credentials apart.
    pub(crate) fn store(
        operation: &'static str,
        location: impl std::fmt::Display,
        source: object_store::Error,
    ) -> Self {
        let location = location.to_string();
        if is_access_denied(&source) {
            RemoteError::AccessDenied {
                operation,
                location,
                source,
            }
        } else {
            RemoteError::Store {
                operation,
                location,
                source,
            }
        }
    }

    /// An I/O error while `doing` something with `path`.
    pub(crate) fn io(
        doing: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        RemoteError::Io {
            doing,
            path: path.into(),
            source,
        }
    }

    /// True when the object named by the error does not exist (a reader
    /// raced a push that removed it): pulling again from a fresh manifest helps.
    pub(crate) fn is_object_missing(&self) -> bool {
        matches!(
            self,
            RemoteError::Store {
                source: object_store::Error::NotFound { .. },
                ..
            }
        )
    }
}

fn is_access_denied(err: &object_store::Error) -> bool {
    match err {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => true,
        other => {
            // The S3 client reports 403 responses as generic errors.
            let text = other.to_string();
            text.contains("403")
                || text.contains("AccessDenied")
                || text.contains("InvalidAccessKeyId")
                || text.contains("SignatureDoesNotMatch")
                || text.contains("Forbidden")
        }
    }
}
