//! LMDB through `heed`.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, RoTxn, WithTls};

use super::{Engine, Mode, Reader, Scan};
use crate::data::{GEN_CHUNK, drain, touch};

/// Address space reserved for the map; LMDB does not allocate it up front.
const MAP_SIZE: usize = 64 << 30;

/// An LMDB environment in `<dir>/lmdb/` with one unnamed database.
pub struct Heed {
    env: Env,
    db: Database<Bytes, Bytes>,
}

impl Heed {
    /// `Mode::Flush` opens with `MDB_NOSYNC` (a commit writes its pages to
    /// the OS but does not fsync); `Mode::Sync` keeps LMDB's default, a
    /// durable commit.
    pub fn open(dir: &Path, mode: Mode) -> Result<Heed> {
        let path = dir.join("lmdb");
        std::fs::create_dir_all(&path)?;
        let mut options = EnvOpenOptions::new();
        options.map_size(MAP_SIZE).max_dbs(1);
        if mode == Mode::Flush {
            // SAFETY: NO_SYNC only weakens durability against OS crashes;
            // the benchmark never relies on data surviving one.
            unsafe { options.flags(EnvFlags::NO_SYNC) };
        }
        // SAFETY: the environment is opened once in this process and the
        // file is not touched by anything else while it is open.
        let env = unsafe { options.open(&path)? };
        let mut wtxn = env.write_txn()?;
        let db = env.create_database(&mut wtxn, None)?;
        wtxn.commit()?;
        Ok(Heed { env, db })
    }
}

impl Engine for Heed {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        self.db.put(&mut wtxn, key, value)?;
        wtxn.commit()?;
        Ok(())
    }

    fn put_batch(&self, batch: &[(&[u8], &[u8])]) -> Result<()> {
        let mut wtxn = self.env.write_txn()?;
        for (key, value) in batch {
            self.db.put(&mut wtxn, key, value)?;
        }
        wtxn.commit()?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(HeedReader {
            db: self.db,
            txn: self.env.read_txn()?,
        }))
    }

    fn scan(&self) -> Result<Scan> {
        let rtxn = self.env.read_txn()?;
        let mut total = Scan::default();
        for item in self.db.iter(&rtxn)? {
            let (_key, value) = item?;
            total = total.merge(Scan::one(value));
        }
        Ok(total)
    }

    fn par_scan(&self) -> Result<Option<Scan>> {
        Ok(None)
    }

    fn put_stream(&self, key: &[u8], len: u64, src: &mut dyn Read) -> Result<Option<()>> {
        let mut wtxn = self.env.write_txn()?;
        let mut chunk = vec![0u8; GEN_CHUNK];
        self.db
            .put_reserved(&mut wtxn, key, usize::try_from(len)?, |space| {
                let mut left = len;
                while left > 0 {
                    let n = chunk.len().min(left as usize);
                    src.read_exact(&mut chunk[..n])?;
                    space.write_all(&chunk[..n])?;
                    left -= n as u64;
                }
                Ok(())
            })?;
        wtxn.commit()?;
        Ok(Some(()))
    }

    fn get_stream(&self, key: &[u8], buf: &mut [u8]) -> Result<Option<Scan>> {
        let rtxn = self.env.read_txn()?;
        let mut value: &[u8] = self.db.get(&rtxn, key)?.context("streamed key missing")?;
        let (bytes, fold) = drain(&mut value, buf)?;
        Ok(Some(Scan {
            entries: 1,
            bytes,
            fold,
        }))
    }

    fn finish(&self) -> Result<()> {
        self.env.force_sync()?;
        Ok(())
    }
}

struct HeedReader<'a> {
    db: Database<Bytes, Bytes>,
    txn: RoTxn<'a, WithTls>,
}

impl Reader for HeedReader<'_> {
    fn get(&mut self, _index: usize, key: &[u8]) -> Result<u64> {
        let value = self.db.get(&self.txn, key)?.context("key missing")?;
        Ok(touch(value))
    }
}
