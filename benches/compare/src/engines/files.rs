//! One file per value in a directory, the other common alternative to a
//! blob store: each value is a file named by its key in hex, read whole
//! with `open` + `read` into a reused buffer (as in SQLite's "35% faster
//! than the filesystem" study).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Engine, Mode, Reader, Scan};
use crate::data::touch;

/// Values in `<dir>/files/`.
pub struct Files {
    dir: PathBuf,
    sync: bool,
}

impl Files {
    /// Opens (creating) the directory; `Mode::Sync` fsyncs every file.
    pub fn open(dir: &Path, mode: Mode) -> Result<Files> {
        let dir = dir.join("files");
        std::fs::create_dir_all(&dir)?;
        Ok(Files {
            dir,
            sync: mode == Mode::Sync,
        })
    }

    fn path(&self, key: &[u8]) -> PathBuf {
        self.dir
            .join(key.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }
}

impl Engine for Files {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut file = File::create(self.path(key))?;
        file.write_all(value)?;
        if self.sync {
            file.sync_data()?;
        }
        Ok(())
    }

    fn put_batch(&self, batch: &[(&[u8], &[u8])]) -> Result<()> {
        batch.iter().try_for_each(|(k, v)| self.put(k, v))
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(FileReader {
            files: self,
            buf: Vec::with_capacity(1 << 16),
        }))
    }

    fn scan(&self) -> Result<Scan> {
        let mut total = Scan::default();
        let mut buf = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            buf.clear();
            File::open(entry?.path())?.read_to_end(&mut buf)?;
            total = total.merge(Scan::one(&buf));
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
        Ok(())
    }
}

struct FileReader<'a> {
    files: &'a Files,
    buf: Vec<u8>,
}

impl Reader for FileReader<'_> {
    fn get(&mut self, _index: usize, key: &[u8]) -> Result<u64> {
        self.buf.clear();
        File::open(self.files.path(key))
            .context("key missing")?
            .read_to_end(&mut self.buf)?;
        Ok(touch(&self.buf))
    }
}
