//! The storage engine of mmblob: [`DataStore`] and everything it needs.
//!
//! Most users want the `mmblob` crate, which re-exports this crate and the
//! entry types; see its documentation for the tour, the file format and the
//! soundness story of the memory map.
//!
//! Reads ([`DataStore::read`], [`DataStore::read_with`], iteration) do not
//! check checksums; [`DataStore::verify`], [`EntryHandle::verify_checksum`],
//! [`OpenOptions::strict`] and [`DataStore::salvage`] do. Damage that is
//! known is reported by [`DataStore::damage`] and hidden: reading a key
//! whose newest entry is damaged fails with [`Error::Corrupt`].

#![deny(unsafe_op_in_unsafe_fn)]

mod append;
mod backup;
mod batch;
mod close;
mod compact;
mod damage;
mod group_commit;
mod index;
mod info;
mod iter;
mod maintain;
pub mod namespace;
mod options;
mod order;
#[cfg(feature = "parallel")]
mod par_iter;
mod prefix;
mod read;
mod reader;
mod recovery;
mod salvage;
mod scan;
mod slots;
mod snapshot;
mod store;
mod table;
mod write;
mod write_map;

#[cfg(test)]
mod tests;

/// The error type shared by every mmblob crate.
pub mod error {
    pub use mmblob_entry::{Error, Result};
}

pub use backup::BackupStats;
pub use batch::{BatchBytes, BatchOutcome, WriteBatch};
pub use compact::CompactStats;
pub use damage::{Damage, DamageKind, VerifyReport};
pub use error::{Error, Result};
pub use info::EntryInfo;
pub use iter::EntryIter;
pub use maintain::StoreStats;
pub use mmblob_entry::{Entry, EntryHandle, EntryStream, release_thread_leases};
pub use namespace::Namespace;
pub use options::{Durability, OpenOptions};
#[cfg(feature = "parallel")]
pub use par_iter::ParEntryIter;
pub use prefix::PrefixIter;
pub use reader::Reader;
pub use salvage::SalvageStats;
pub use scan::Entries;
pub use store::DataStore;
