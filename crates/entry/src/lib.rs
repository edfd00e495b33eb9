//! Entry format and zero-copy entry handles for the mmblob store.
//!
//! This crate holds everything about one entry and nothing about the engine:
//! the on-disk [`format`](mod@format) (header and trailer encoding, alignment), the
//! seeded [`checksum`], the shared [`Mapping`] of a store file, the
//! [`EntryHandle`] that reads a value in place, its typed views and the
//! [`EntryStream`] that streams it. Most users want the `mmblob` crate, which
//! re-exports all of this next to the engine.

#[cfg(not(target_pointer_width = "64"))]
compile_error!("mmblob maps whole store files and needs a 64-bit target");

#[cfg(feature = "arrow")]
mod arrow;
pub mod checksum;
mod error;
pub mod format;
mod handle;
mod mapping;
mod prefetch;
mod stream;

pub use error::{Error, Result};
pub use handle::EntryHandle;
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
