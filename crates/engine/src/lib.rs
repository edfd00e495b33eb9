//! The storage engine of mmblob: [`DataStore`] and everything it needs.
//!
//! Most users want the `mmblob` crate, which re-exports this crate and the
//! entry types; see its documentation for the tour, the file format and the
//! soundness story of the memory map.

#![deny(unsafe_op_in_unsafe_fn)]

mod append;
mod compact;
mod damage;
mod group_commit;
mod index;
mod iter;
mod maintain;
mod options;
mod order;
#[cfg(feature = "parallel")]
mod par_iter;
mod read;
mod reader;
mod recovery;
mod scan;
mod slots;
mod snapshot;
mod store;
mod table;
mod write;

#[cfg(test)]
mod tests;

/// The error type shared by every mmblob crate.
pub mod error {
    pub use mmblob_entry::{Error, Result};
}

pub use compact::CompactStats;
pub use damage::{Damage, DamageKind, VerifyReport};
pub use error::{Error, Result};
pub use iter::EntryIter;
pub use maintain::StoreStats;
pub use mmblob_entry::{Entry, EntryHandle, EntryStream, release_thread_leases};
pub use options::{Durability, OpenOptions};
#[cfg(feature = "parallel")]
pub use par_iter::ParEntryIter;
pub use reader::Reader;
pub use scan::Entries;
pub use store::DataStore;
