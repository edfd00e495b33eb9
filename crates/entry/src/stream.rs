//! Streaming reads of one value.

use std::io::{self, BufRead, Read, Seek, SeekFrom};

use crate::handle::EntryHandle;

/// `Read + BufRead + Seek` over one payload.
///
/// It holds no buffer of its own: `fill_buf` lends the rest of the payload
/// straight from the memory map, and `read` copies only into the caller's
/// buffer, so streaming a value of any size costs bounded memory.
#[derive(Debug, Clone)]
pub struct EntryStream {
    entry: EntryHandle,
    pos: u64,
}

impl EntryStream {
    pub(crate) fn new(entry: EntryHandle) -> Self {
        EntryStream { entry, pos: 0 }
    }

    /// The entry being streamed.
    #[must_use]
    pub fn entry(&self) -> &EntryHandle {
        &self.entry
    }

    /// Current position within the payload.
    #[must_use]
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn remaining(&self) -> &[u8] {
        let payload = self.entry.as_slice();
        let start = usize::try_from(self.pos).map_or(payload.len(), |p| p.min(payload.len()));
        &payload[start..]
    }
}

impl Read for EntryStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = self.remaining();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl BufRead for EntryStream {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(self.remaining())
    }

    fn consume(&mut self, amt: usize) {
        let n = amt.min(self.remaining().len());
        self.pos += n as u64;
    }
}

impl Seek for EntryStream {
    fn seek(&mut self, target: SeekFrom) -> io::Result<u64> {
        let (base, delta) = match target {
            SeekFrom::Start(pos) => {
                self.pos = pos;
                return Ok(pos);
            }
            SeekFrom::End(delta) => (self.entry.len() as u64, delta),
            SeekFrom::Current(delta) => (self.pos, delta),
        };
        match base.checked_add_signed(delta) {
            Some(pos) => {
                self.pos = pos;
                Ok(pos)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )),
        }
    }
}
