//! The physical limit: values appended to a plain file, read through a
//! memory map and an offset table keyed by insertion index. No keys, no
//! checksums, no recovery.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, IoSlice, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow};
use memmap2::Mmap;
use rayon::prelude::*;

use super::{Engine, Mode, Reader, Scan};
use crate::data::{GEN_CHUNK, drain, touch};

/// Offset and length of each value, by insertion index.
type Table = Vec<(u64, u32)>;

/// A plain file `<dir>/raw.bin` plus its offset table `<dir>/raw.offsets`
/// (written by `finish`, loaded by `open`).
pub struct Raw {
    path: PathBuf,
    file: File,
    sync: bool,
    written: Mutex<Written>,
    map: Option<Mmap>,
    table: Table,
}

/// Entries appended since open.
struct Written {
    tail: u64,
    table: Table,
}

impl Raw {
    /// Opens or creates the file; `Mode::Sync` adds `sync_data` after each write.
    pub fn open(dir: &Path, mode: Mode) -> Result<Raw> {
        let path = dir.join("raw.bin");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        let tail = file.metadata()?.len();
        let table = load_table(&dir.join("raw.offsets"))?;
        // SAFETY: the file only grows while mapped and nothing else writes it.
        let map = if tail > 0 {
            Some(unsafe { Mmap::map(&file)? })
        } else {
            None
        };
        let written = Mutex::new(Written {
            tail,
            table: Vec::new(),
        });
        Ok(Raw {
            path,
            file,
            sync: mode == Mode::Sync,
            written,
            map,
            table,
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Written>> {
        self.written
            .lock()
            .map_err(|_| anyhow!("raw writer lock poisoned"))
    }

    fn map(&self) -> Result<&Mmap> {
        self.map.as_ref().context("raw store was empty when opened")
    }

    fn after_write(&self) -> Result<()> {
        if self.sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

fn load_table(path: &Path) -> Result<Table> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let count = file.metadata()?.len() / 12;
    let mut table = Vec::with_capacity(usize::try_from(count)?);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut record = [0u8; 12];
    for _ in 0..count {
        reader.read_exact(&mut record)?;
        let (off, len) = record.split_at(8);
        table.push((
            u64::from_le_bytes(off.try_into()?),
            u32::from_le_bytes(len.try_into()?),
        ));
    }
    Ok(table)
}

/// Values shorter than this are gathered into one buffer and written with
/// one `write_all`: a `writev` of a thousand 64-byte slices is about four
/// times slower here, and the baseline should be the fastest plain way.
const GATHER_BELOW: usize = 16 * 1024;

/// Appends the values of `batch` in order, the fastest plain way.
fn write_batch(mut file: &File, batch: &[(&[u8], &[u8])]) -> io::Result<()> {
    if batch.iter().all(|(_, v)| v.len() < GATHER_BELOW) {
        let mut gathered = Vec::with_capacity(batch.iter().map(|(_, v)| v.len()).sum());
        for (_, value) in batch {
            gathered.extend_from_slice(value);
        }
        return file.write_all(&gathered);
    }
    let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|(_, v)| IoSlice::new(v)).collect();
    write_all_vectored(file, &mut slices)
}

fn write_all_vectored(mut file: &File, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn scan_one(map: &Mmap, (off, len): (u64, u32)) -> Scan {
    let start = off as usize;
    Scan::one(&map[start..start + len as usize])
}

impl Engine for Raw {
    fn put(&self, _key: &[u8], value: &[u8]) -> Result<()> {
        {
            let mut w = self.lock()?;
            (&self.file).write_all(value)?;
            let at = w.tail;
            w.table.push((at, u32::try_from(value.len())?));
            w.tail += value.len() as u64;
        }
        self.after_write()
    }

    fn put_batch(&self, batch: &[(&[u8], &[u8])]) -> Result<()> {
        {
            let mut w = self.lock()?;
            write_batch(&self.file, batch)?;
            for (_, value) in batch {
                let at = w.tail;
                w.table.push((at, u32::try_from(value.len())?));
                w.tail += value.len() as u64;
            }
        }
        self.after_write()
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(RawReader {
            map: self.map()?,
            table: &self.table,
        }))
    }

    fn scan(&self) -> Result<Scan> {
        let map = self.map()?;
        Ok(self
            .table
            .iter()
            .fold(Scan::default(), |acc, &e| acc.merge(scan_one(map, e))))
    }

    fn par_scan(&self) -> Result<Option<Scan>> {
        let map = self.map()?;
        let total = self
            .table
            .par_iter()
            .map(|&e| scan_one(map, e))
            .reduce(Scan::default, Scan::merge);
        Ok(Some(total))
    }

    fn put_stream(&self, _key: &[u8], len: u64, src: &mut dyn Read) -> Result<Option<()>> {
        let mut chunk = vec![0u8; GEN_CHUNK];
        let mut w = self.lock()?;
        let start = w.tail;
        let mut left = len;
        while left > 0 {
            let n = chunk.len().min(left as usize);
            src.read_exact(&mut chunk[..n])?;
            (&self.file).write_all(&chunk[..n])?;
            left -= n as u64;
        }
        w.table.push((start, u32::try_from(len)?));
        w.tail += len;
        drop(w);
        self.after_write()?;
        Ok(Some(()))
    }

    fn get_stream(&self, _key: &[u8], buf: &mut [u8]) -> Result<Option<Scan>> {
        let (start, len) = *self.lock()?.table.last().context("nothing streamed")?;
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(start))?;
        let (bytes, fold) = drain(&mut file.take(u64::from(len)), buf)?;
        Ok(Some(Scan {
            entries: 1,
            bytes,
            fold,
        }))
    }

    fn finish(&self) -> Result<()> {
        let w = self.lock()?;
        let path = self.path.with_extension("offsets");
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        for &(off, len) in &w.table {
            out.write_all(&off.to_le_bytes())?;
            out.write_all(&len.to_le_bytes())?;
        }
        out.flush()?;
        Ok(())
    }
}

struct RawReader<'a> {
    map: &'a Mmap,
    table: &'a [(u64, u32)],
}

impl Reader for RawReader<'_> {
    fn get(&mut self, index: usize, _key: &[u8]) -> Result<u64> {
        let (off, len) = *self
            .table
            .get(index)
            .context("index past the offset table")?;
        let start = off as usize;
        Ok(touch(&self.map[start..start + len as usize]))
    }
}
