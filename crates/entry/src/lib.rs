//! Entry format and zero-copy entry handles for the mmblob store.
//!
//! This crate holds everything about one entry and nothing about the engine:
//! the on-disk [`format`](mod@format) (header and trailer encoding, alignment), the
//! seeded [`checksum`], the shared [`Mapping`] of a store file, the
//! [`EntryHandle`] that reads a value in place, its typed views and the
//! [`EntryStream`] that streams it. Most users want the `mmblob` crate, which
//! re-exports all of this next to the engine.
//!
//! ## Leases
//!
//! A handle keeps its map alive through a counted reference to a lease,
//! not a shared `Arc`: each lease belongs to one thread, which counts with
//! plain arithmetic, while other threads count atomically on a biased
//! counter until the owner merges its count (biased reference counting).
//! Making, cloning and dropping handles on one thread therefore writes no
//! cache line that another core writes. The soundness argument is in the
//! docs of the `lease` module (`src/lease.rs`): only the owner touches the
//! plain count, the bias keeps the atomic count above zero until the
//! merge, and afterwards the atomic count is exact, so the last reference
//! on any thread frees the lease. [`ScopedLease`] is a lease owned for one
//! call (a batch, a piece of a parallel scan); [`release_thread_leases`]
//! lets go of the calling thread's cached ones.

#[cfg(not(target_pointer_width = "64"))]
compile_error!("mmblob maps whole store files and needs a 64-bit target");

#[cfg(feature = "arrow")]
mod arrow;
pub mod checksum;
mod entry;
mod error;
pub mod format;
mod handle;
mod lease;
mod mapping;
mod prefetch;
mod stream;

pub use entry::Entry;
pub use error::{Error, Result};
pub use handle::EntryHandle;
pub use lease::{ScopedLease, release_thread_leases};
pub use mapping::Mapping;
pub use prefetch::prefetch;
pub use stream::EntryStream;

/// Renders a key for messages: as text when it is printable UTF-8, else as
/// hex; long keys are shortened.
#[must_use]
pub fn display_key(key: &[u8]) -> String {
    const MAX: usize = 64;
    let shown = &key[..key.len().min(MAX)];
    let mut out = match std::str::from_utf8(shown) {
        Ok(s) if !s.chars().any(char::is_control) => format!("{s:?}"),
        _ => shown.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    };
    if key.len() > MAX {
        out.push_str(&format!("… ({} bytes)", key.len()));
    }
    out
}
