//! SQLite BLOBs through `rusqlite` (bundled SQLite), the store people most
//! often pick instead of a blob store.
//!
//! One table `kv`, WAL journal, written in transactions of one batch each.
//! The integer variant keys rows by `INTEGER PRIMARY KEY` (the key's first
//! 63 bits: a B-tree lookup on the rowid); the text variant by a
//! `TEXT PRIMARY KEY` holding the key in hex (an index lookup, then the
//! row), as in SQLite's "35% faster than the filesystem" study. The `mmap`
//! variants set `PRAGMA mmap_size` to cover the whole database, so pages
//! are read through a map instead of `pread` into SQLite's cache.

use std::cell::RefCell;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Engine, Mode, Reader, Scan};
use crate::data::touch;

/// `mmap_size` of the mmap variants: more than any database here.
const MMAP_SIZE: i64 = 1 << 34;

/// A SQLite database in `<dir>/store.sqlite`.
pub struct Sqlite {
    /// rusqlite connections are `Send` but not `Sync`; the harness only
    /// shares an engine between threads for writes of its own workloads,
    /// which this engine does not run, so a mutex is never contended.
    conn: std::sync::Mutex<Connection>,
    text: bool,
}

impl Sqlite {
    /// Opens (creating) the database; `text` picks the text key, `mmap`
    /// maps the database file.
    pub fn open(dir: &Path, mode: Mode, text: bool, mmap: bool) -> Result<Sqlite> {
        let conn = Connection::open(dir.join("store.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match mode {
            Mode::Flush => "OFF",
            Mode::Sync => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "mmap_size", if mmap { MMAP_SIZE } else { 0 })?;
        let key = if text { "TEXT" } else { "INTEGER" };
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS kv (k {key} PRIMARY KEY, v BLOB NOT NULL);"
        ))?;
        Ok(Sqlite {
            conn: std::sync::Mutex::new(conn),
            text,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The hex text key of `key`.
fn text_key(key: &[u8]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The integer key of entry `key`: its first 8 bytes, as the harness's
/// keys are pseudo-random (63 bits, so it stays positive).
fn int_key(key: &[u8]) -> i64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&key[..8]);
    (u64::from_le_bytes(word) >> 1) as i64
}

impl Engine for Sqlite {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.put_batch(&[(key, value)])
    }

    fn put_batch(&self, batch: &[(&[u8], &[u8])]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert =
                tx.prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")?;
            for (key, value) in batch {
                if self.text {
                    insert.execute(params![text_key(key), value])?;
                } else {
                    insert.execute(params![int_key(key), value])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(SqliteReader {
            conn: RefCell::new(self.conn()),
            text: self.text,
        }))
    }

    fn scan(&self) -> Result<Scan> {
        let conn = self.conn();
        let mut select = conn.prepare("SELECT v FROM kv")?;
        let mut rows = select.query([])?;
        let mut total = Scan::default();
        while let Some(row) = rows.next()? {
            total = total.merge(Scan::one(row.get_ref(0)?.as_blob()?));
        }
        Ok(total)
    }

    fn par_scan(&self) -> Result<Option<Scan>> {
        Ok(None)
    }

    fn put_stream(&self, _key: &[u8], _len: u64, _src: &mut dyn Read) -> Result<Option<()>> {
        Ok(None)
    }

    fn get_stream(&self, _key: &[u8], _buf: &mut [u8]) -> Result<Option<Scan>> {
        Ok(None)
    }

    fn finish(&self) -> Result<()> {
        self.conn()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }
}

struct SqliteReader<'a> {
    conn: RefCell<std::sync::MutexGuard<'a, Connection>>,
    text: bool,
}

impl Reader for SqliteReader<'_> {
    /// One prepared (cached) `SELECT`; the blob is borrowed from SQLite's
    /// row buffer and every byte folded.
    fn get(&mut self, _index: usize, key: &[u8]) -> Result<u64> {
        let conn = self.conn.borrow();
        let mut select = conn.prepare_cached("SELECT v FROM kv WHERE k = ?1")?;
        let fold = |row: &rusqlite::Row<'_>| Ok(touch(row.get_ref(0)?.as_blob()?));
        let found = if self.text {
            select.query_row(params![text_key(key)], fold).optional()?
        } else {
            select.query_row(params![int_key(key)], fold).optional()?
        };
        found.context("key missing")
    }
}
