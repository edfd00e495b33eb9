//! Ships mmblob stores to S3-compatible object storage and follows them
//! from there, on the [`object_store`] crate (S3, GCS, Azure, local files,
//! memory).
//!
//! An mmblob file is append-only, so it ships exactly and incrementally:
//!
//! * [`push`] uploads the bytes committed since the last push as one
//!   immutable segment object under `<prefix>/<store id>/`, then replaces the
//!   small manifest object `<prefix>/manifest.json` that lists the segments
//!   with their byte ranges and xxh3 checksums. Segments first, manifest
//!   last: a failure or crash at any point leaves the previous manifest and
//!   everything it names intact. A compaction writes a new file with a new
//!   store id; the next push starts a new generation with a full upload,
//!   and older generations are deleted past
//!   [`PushOptions::retain_generations`].
//! * [`pull`] creates or extends a local replica: it downloads only what
//!   the replica lacks, checks every entry's checksum and every whole
//!   segment's xxh3 before the bytes become visible, then appends them (or
//!   renames a complete new generation into place). The replica is an
//!   ordinary store, opened read-only.
//! * [`Pusher`] and [`Follower`] run those on an interval on a background
//!   thread; a reader sees a prefix of the acknowledged writes, lagging by
//!   about the two intervals.
//!
//! ```no_run
//! use std::sync::Arc;
//! use mmblob_engine::DataStore;
//! use mmblob_remote::{open_url, push, pull, PushOptions, PullOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = DataStore::open("data.mmblob")?;
//! store.write(b"k", b"v")?;
//! let remote = open_url("s3://bucket/stores/data")?;
//! push(&store, remote.store.as_ref(), &remote.prefix, &PushOptions::default())?;
//! pull(remote.store.as_ref(), &remote.prefix, "replica.mmblob", &PullOptions::default())?;
//! # Ok(()) }
//! ```
//!
//! The blocking [`push`] and [`pull`] run their own small runtime; inside
//! async code call [`push_async`] and [`pull_async`].

mod error;
mod follow;
pub mod layout;
pub mod manifest;
mod pull;
mod push;
mod remote;
mod source;
mod verify;

pub use error::{RemoteError, Result};
pub use follow::{Follower, FollowerBuilder, OnResult, Pusher, PusherBuilder};
pub use object_store;
pub use pull::{PullOptions, PullStats, pull, pull_async};
pub use push::{PushOptions, PushStats, push, push_async};
pub use remote::{Progress, ProgressFn, Remote, open_url, read_manifest};
