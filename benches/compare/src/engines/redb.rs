//! redb.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Engine, Mode, Reader, Scan};
use crate::data::{GEN_CHUNK, drain, touch};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");

/// A redb database in `<dir>/store.redb`.
pub struct Redb {
    db: Database,
    durability: Durability,
}

impl Redb {
    /// `Mode::Flush` commits with `Durability::None` (redb has no level
    /// that hands a commit to the OS without an fsync); `Mode::Sync` with
    /// `Durability::Immediate`, redb's default.
    pub fn open(dir: &Path, mode: Mode) -> Result<Redb> {
        let db = Database::create(dir.join("store.redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(TABLE)?;
        txn.commit()?;
        let durability = match mode {
            Mode::Flush => Durability::None,
            Mode::Sync => Durability::Immediate,
        };
        Ok(Redb { db, durability })
    }

    fn write_txn(&self) -> Result<redb::WriteTransaction> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(self.durability)?;
        Ok(txn)
    }

    fn read_table(&self) -> Result<ReadOnlyTable<&'static [u8], &'static [u8]>> {
        Ok(self.db.begin_read()?.open_table(TABLE)?)
    }
}

impl Engine for Redb {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let txn = self.write_txn()?;
        txn.open_table(TABLE)?.insert(key, value)?;
        txn.commit()?;
        Ok(())
    }

    fn put_batch(&self, batch: &[(&[u8], &[u8])]) -> Result<()> {
        let txn = self.write_txn()?;
        {
            let mut table = txn.open_table(TABLE)?;
            for (key, value) in batch {
                table.insert(*key, *value)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(RedbReader {
            table: self.read_table()?,
        }))
    }

    fn scan(&self) -> Result<Scan> {
        let table = self.read_table()?;
        let mut total = Scan::default();
        for item in table.iter()? {
            let (_key, value) = item?;
            total = total.merge(Scan::one(value.value()));
        }
        Ok(total)
    }

    fn par_scan(&self) -> Result<Option<Scan>> {
        Ok(None)
    }

    fn put_stream(&self, key: &[u8], len: u64, src: &mut dyn Read) -> Result<Option<()>> {
        let txn = self.write_txn()?;
        {
            let mut table = txn.open_table(TABLE)?;
            let mut guard = table.insert_reserve(key, usize::try_from(len)?)?;
            for chunk in guard.as_mut().chunks_mut(GEN_CHUNK) {
                src.read_exact(chunk)?;
            }
        }
        txn.commit()?;
        Ok(Some(()))
    }

    fn get_stream(&self, key: &[u8], buf: &mut [u8]) -> Result<Option<Scan>> {
        let table = self.read_table()?;
        let guard = table.get(key)?.context("streamed key missing")?;
        let mut value: &[u8] = guard.value();
        let (bytes, fold) = drain(&mut value, buf)?;
        Ok(Some(Scan {
            entries: 1,
            bytes,
            fold,
        }))
    }

    fn finish(&self) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
        Ok(())
    }
}

struct RedbReader {
    table: ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl Reader for RedbReader {
    fn get(&mut self, _index: usize, key: &[u8]) -> Result<u64> {
        let guard = self.table.get(key)?.context("key missing")?;
        Ok(touch(guard.value()))
    }
}
