//! SIMD R Drive (crate `simd-r-drive`), the closest existing system.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use rayon::prelude::*;
use simd_r_drive::traits::{DataStoreReader, DataStoreWriter};
use simd_r_drive::{DataStore, EntryStream};

use super::{Engine, Reader, Scan};
use crate::data::{drain, touch};

/// A simd-r-drive store in `<dir>/store.bin`.
pub struct SimdRDrive {
    store: DataStore,
}

impl SimdRDrive {
    /// Opens the store; simd-r-drive has a single durability level.
    pub fn open(dir: &Path) -> Result<SimdRDrive> {
        let store = DataStore::open(&dir.join("store.bin"))?;
        Ok(SimdRDrive { store })
    }
}

impl Engine for SimdRDrive {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.store.write(key, value)?;
        Ok(())
    }

    fn put_batch(&self, batch: &[(&[u8], &[u8])]) -> Result<()> {
        self.store.batch_write(batch)?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(SimdReader { store: &self.store }))
    }

    fn scan(&self) -> Result<Scan> {
        let mut total = Scan::default();
        for handle in self.store.iter_entries() {
            total = total.merge(Scan::one(handle.as_slice()));
        }
        Ok(total)
    }

    fn par_scan(&self) -> Result<Option<Scan>> {
        let total = self
            .store
            .par_iter_entries()
            .map(|handle| Scan::one(handle.as_slice()))
            .reduce(Scan::default, Scan::merge);
        Ok(Some(total))
    }

    fn put_stream(&self, key: &[u8], _len: u64, mut src: &mut dyn Read) -> Result<Option<()>> {
        self.store.write_stream(key, &mut src)?;
        Ok(Some(()))
    }

    fn get_stream(&self, key: &[u8], buf: &mut [u8]) -> Result<Option<Scan>> {
        let handle = self.store.read(key)?.context("streamed key missing")?;
        let mut stream = EntryStream::from(handle);
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

struct SimdReader<'a> {
    store: &'a DataStore,
}

impl Reader for SimdReader<'_> {
    fn get(&mut self, _index: usize, key: &[u8]) -> Result<u64> {
        let handle = self.store.read(key)?.context("key missing")?;
        Ok(touch(handle.as_slice()))
    }

    fn get_many(&mut self, _indexes: &[usize], keys: &[&[u8]]) -> Result<u64> {
        let mut acc = 0u64;
        for handle in self.store.batch_read(keys)? {
            acc = acc.wrapping_add(touch(handle.context("key missing")?.as_slice()));
        }
        Ok(acc)
    }
}
