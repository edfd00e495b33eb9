//! `--ns NAME`: the key commands work on plain keys or on the keys of one
//! namespace through the same few calls.

use std::io::Read;

use mmblob::{DataStore, EntryHandle, EntryInfo, Error, Namespace, Result};

use crate::cli::error::{CliError, CliResult, Exit};

/// The plain keys of a store, or the keys of one of its namespaces.
pub enum Space<'s> {
    /// Plain keys.
    Plain(&'s DataStore),
    /// The keys of one namespace.
    Ns(Namespace<'s>),
}

impl<'s> Space<'s> {
    /// The namespace `ns` of `db`, or its plain keys when `ns` is `None`.
    pub fn new(db: &'s DataStore, ns: Option<&str>) -> CliResult<Space<'s>> {
        match ns {
            None => Ok(Space::Plain(db)),
            Some(name) => db.namespace(name).map(Space::Ns).map_err(|e| match e {
                Error::InvalidNamespace { .. } => CliError::new(Exit::Usage, format!("--ns: {e}")),
                other => CliError::store(db.path(), other),
            }),
        }
    }

    /// The value stored under `key`.
    pub fn read(&self, key: &[u8]) -> Result<Option<EntryHandle>> {
        match self {
            Space::Plain(db) => db.read(key),
            Space::Ns(ns) => ns.read(key),
        }
    }

    /// True when `key` holds a value.
    pub fn exists(&self, key: &[u8]) -> Result<bool> {
        match self {
            Space::Plain(db) => db.exists(key),
            Space::Ns(ns) => ns.exists(key),
        }
    }

    /// Streams `reader` into the value of `key`.
    pub fn write_stream(&self, key: &[u8], reader: &mut impl Read) -> Result<u64> {
        match self {
            Space::Plain(db) => db.write_stream(key, reader),
            Space::Ns(ns) => ns.write_stream(key, reader),
        }
    }

    /// Deletes the keys that exist, atomically; how many did.
    pub fn batch_delete(&self, keys: &[&[u8]]) -> Result<usize> {
        match self {
            Space::Plain(db) => db.batch_delete(keys),
            Space::Ns(ns) => ns.batch_delete(keys),
        }
    }

    /// Moves the value of `old` to `new`.
    pub fn rename(&self, old: &[u8], new: &[u8]) -> Result<()> {
        match self {
            Space::Plain(db) => db.rename(old, new),
            Space::Ns(ns) => ns.rename(old, new),
        }
    }

    /// The trailer metadata of `key`'s value.
    pub fn entry_info(&self, key: &[u8]) -> Result<Option<EntryInfo>> {
        match self {
            Space::Plain(db) => db.entry_info(key),
            Space::Ns(ns) => ns.entry_info(key),
        }
    }

    /// The live entries whose key starts with `prefix`. Plain listings
    /// leave out the keys of namespaces.
    pub fn entries_with_prefix(&self, prefix: &[u8]) -> Box<dyn Iterator<Item = EntryHandle>> {
        match self {
            Space::Plain(db) => Box::new(
                db.entries_with_prefix(prefix)
                    .filter(|e| mmblob::namespace::split_key(e.key()).is_none()),
            ),
            Space::Ns(ns) => Box::new(ns.entries_with_prefix(prefix)),
        }
    }

    /// The key a user knows for a stored key (without the namespace).
    pub fn key_of<'k>(&self, stored: &'k [u8]) -> &'k [u8] {
        match self {
            Space::Plain(_) => stored,
            Space::Ns(ns) => ns.key_of(stored).unwrap_or(stored),
        }
    }
}
