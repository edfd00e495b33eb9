//! mmblob through its public API.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use mmblob::{DataStore, Durability, OpenOptions};

use super::{Engine, Mode, Reader, Scan};
use crate::data::{drain, touch};

/// An mmblob store in `<dir>/store.mmblob`, read through borrowed slices
/// (`reader().get`, `for_each_entry`, `par_fold_entries`) or, as
/// `mmblob-h`, through handles (`read`, `iter_entries`, `par_iter_entries`).
pub struct Mmblob {
    store: DataStore,
    handles: bool,
}

impl Mmblob {
    /// Opens with `Durability::Flush` (the default) or `Durability::Sync`;
    /// reads go through handles if `handles`.
    pub fn open(dir: &Path, mode: Mode, handles: bool) -> Result<Mmblob> {
        let path = dir.join("store.mmblob");
        let store = match mode {
            Mode::Flush => DataStore::open(&path)?,
            Mode::Sync => OpenOptions::new()
                .durability(Durability::Sync)
                .open(&path)?,
        };
        Ok(Mmblob { store, handles })
    }
}

impl Engine for Mmblob {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.store.write(key, value)?;
        Ok(())
    }

    fn put_batch(&self, batch: &[(&[u8], &[u8])]) -> Result<()> {
        self.store.batch_write(batch)?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        if self.handles {
            return Ok(Box::new(HandleReader { store: &self.store }));
        }
        Ok(Box::new(MmblobReader {
            store: &self.store,
            session: self.store.reader(),
        }))
    }

    /// The borrowing scan: key and value slices lent from the map, no
    /// handle (and no reference count) per entry.
    fn scan(&self) -> Result<Scan> {
        if self.handles {
            let mut total = Scan::default();
            for entry in self.store.iter_entries() {
                total = total.merge(Scan::one(&entry));
            }
            return Ok(total);
        }
        let mut total = Scan::default();
        self.store
            .for_each_entry(|_, value| total = total.merge(Scan::one(value)));
        Ok(total)
    }

    fn par_scan(&self) -> Result<Option<Scan>> {
        if self.handles {
            use rayon::prelude::*;
            let total = self
                .store
                .par_iter_entries()
                .map(|entry| Scan::one(&entry))
                .reduce(Scan::default, Scan::merge);
            return Ok(Some(total));
        }
        let total = self.store.par_fold_entries(
            Scan::default,
            |acc, _, value| acc.merge(Scan::one(value)),
            Scan::merge,
        );
        Ok(Some(total))
    }

    fn put_stream(&self, key: &[u8], _len: u64, mut src: &mut dyn Read) -> Result<Option<()>> {
        self.store.write_stream(key, &mut src)?;
        Ok(Some(()))
    }

    fn get_stream(&self, key: &[u8], buf: &mut [u8]) -> Result<Option<Scan>> {
        let handle = self.store.read(key)?.context("streamed key missing")?;
        let mut stream = handle.stream();
        let (bytes, fold) = drain(&mut stream, buf)?;
        Ok(Some(Scan {
            entries: 1,
            bytes,
            fold,
        }))
    }

    fn finish(&self) -> Result<()> {
        Ok(())
    }
}

struct MmblobReader<'a> {
    store: &'a DataStore,
    session: mmblob::Reader<'a>,
}

impl Reader for MmblobReader<'_> {
    /// A read session's borrowed read: the value is lent from the map, no
    /// handle and no reference count per read (heed's reads borrow from a
    /// read transaction the same way).
    fn get(&mut self, _index: usize, key: &[u8]) -> Result<u64> {
        Ok(touch(self.session.get(key)?.context("key missing")?))
    }

    fn get_many(&mut self, _indexes: &[usize], keys: &[&[u8]]) -> Result<u64> {
        let mut acc = 0u64;
        for handle in self.store.batch_read(keys)? {
            acc = acc.wrapping_add(touch(&handle.context("key missing")?));
        }
        Ok(acc)
    }
}

/// Reads through handles: `read` per key, `batch_read` per batch.
struct HandleReader<'a> {
    store: &'a DataStore,
}

impl Reader for HandleReader<'_> {
    fn get(&mut self, _index: usize, key: &[u8]) -> Result<u64> {
        Ok(touch(&self.store.read(key)?.context("key missing")?))
    }

    fn get_many(&mut self, _indexes: &[usize], keys: &[&[u8]]) -> Result<u64> {
        let mut acc = 0u64;
        for handle in self.store.batch_read(keys)? {
            acc = acc.wrapping_add(touch(&handle.context("key missing")?));
        }
        Ok(acc)
    }
}
