//! Encoding entries and appending them to the file in as few calls as possible.

use std::fs::File;
use std::io::{self, IoSlice};
use std::ops::Range;

use mmblob_entry::checksum::EntryCrc;
use mmblob_entry::format::{
    FLAG_BATCH_CONTINUES, FLAG_TOMBSTONE, TRAILER_LEN, Trailer, payload_start,
};

use crate::error::{Error, Result};
use crate::recovery::KeyHasher;

/// Values at least this long are written from the caller's memory instead of
/// being copied into the scratch buffer.
const BORROW_THRESHOLD: usize = 16 * 1024;
/// The checksum closes the trailer.
const CRC_LEN: usize = 4;
/// Most buffers one `pwritev` call takes (Linux `IOV_MAX`).
const MAX_IOVECS: usize = 1024;
/// Most bytes one `pwrite` call carries: on the machine measured, the same
/// bytes go several times faster in 64 KiB calls than in calls of 1-10 MiB.
const MAX_CALL_BYTES: usize = 64 << 10;

/// How many bytes of `value` an [`Appender`] copies into its buffer.
pub(crate) fn copied_len(value: &[u8]) -> usize {
    if value.len() >= BORROW_THRESHOLD {
        0
    } else {
        value.len()
    }
}

enum Piece<'a> {
    Scratch(Range<usize>),
    Borrowed(&'a [u8]),
}

/// One encoded entry of an [`Appender`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Appended {
    pub(crate) hash: u64,
    pub(crate) end: u64,
    pub(crate) tombstone: bool,
    /// Index of the key in the caller's list.
    pub(crate) position: usize,
    /// Payload length and whole entry length (padding, key, trailer included).
    pub(crate) payload_len: u64,
    pub(crate) size: u64,
}

/// Entries laid out back to back from `start`, ready to be written at once.
pub(crate) struct Appender<'a> {
    store_id: u64,
    hasher: KeyHasher,
    start: u64,
    end: u64,
    scratch: Vec<u8>,
    pieces: Vec<Piece<'a>>,
    entries: Vec<Appended>,
}

impl<'a> Appender<'a> {
    pub(crate) fn new(store_id: u64, hasher: KeyHasher, start: u64) -> Self {
        Appender {
            store_id,
            hasher,
            start,
            end: start,
            scratch: Vec::new(),
            pieces: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// Makes room for `entries` more entries of which `bytes` (keys plus
    /// values) are copied in, so that encoding a batch allocates once.
    pub(crate) fn reserve(&mut self, entries: usize, bytes: usize) {
        // Per entry at most 63 bytes of padding and a trailer.
        let overhead = entries.saturating_mul(64 + TRAILER_LEN as usize);
        self.scratch.reserve(bytes.saturating_add(overhead));
        self.pieces.reserve(entries.min(MAX_IOVECS));
        self.entries.reserve(entries);
    }

    /// Offset just past the last encoded entry.
    /// Where the first encoded byte goes.
    pub(crate) fn start(&self) -> u64 {
        self.start
    }

    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    pub(crate) fn entries(&self) -> &[Appended] {
        &self.entries
    }

    fn push_scratch(&mut self, bytes: &[u8]) {
        let from = self.scratch.len();
        self.scratch.extend_from_slice(bytes);
        match self.pieces.last_mut() {
            Some(Piece::Scratch(range)) if range.end == from => range.end = self.scratch.len(),
            _ => self.pieces.push(Piece::Scratch(from..self.scratch.len())),
        }
    }

    /// Encodes a value entry (or a tombstone when `tombstone`); marks it as
    /// continued when more entries of the same atomic batch follow.
    pub(crate) fn push(
        &mut self,
        key: &[u8],
        value: &'a [u8],
        tombstone: bool,
        continues: bool,
        position: usize,
    ) {
        let prev_end = self.end;
        let payload_len = value.len() as u64;
        // Cannot overflow: the caller checked the value length and the file
        // offsets are far below 2^63.
        let start = payload_start(prev_end, payload_len).unwrap_or(prev_end);
        let mut trailer = self.trailer(prev_end, key, value, tombstone, continues);
        self.push_scratch(&[0u8; 64][..(start - prev_end) as usize]);
        let borrowed = copied_len(value) < value.len();
        let from = self.scratch.len();
        if borrowed {
            trailer.crc = trailer.compute_crc(self.store_id, value, key);
            self.pieces.push(Piece::Borrowed(value));
        } else {
            self.push_scratch(value);
        }
        self.push_scratch(key);
        self.push_scratch(&trailer.encode());
        if !borrowed {
            // Value, key and trailer lie back to back in the buffer: one
            // checksum call over all three is about twice as fast for short
            // entries as one call per part.
            let crc_at = self.scratch.len() - CRC_LEN;
            let mut crc = EntryCrc::new(self.store_id);
            crc.update(&self.scratch[from..crc_at]);
            self.scratch[crc_at..].copy_from_slice(&crc.finish().to_le_bytes());
        }
        self.end = start + payload_len + key.len() as u64 + TRAILER_LEN;
        self.entries.push(Appended {
            hash: trailer.key_hash,
            end: self.end,
            tombstone,
            position,
            payload_len,
            size: self.end - prev_end,
        });
    }

    /// The trailer of an entry, its checksum still zero.
    fn trailer(
        &self,
        prev_end: u64,
        key: &[u8],
        value: &[u8],
        tombstone: bool,
        continues: bool,
    ) -> Trailer {
        let mut flags = 0;
        if tombstone {
            flags |= FLAG_TOMBSTONE;
        }
        if continues {
            flags |= FLAG_BATCH_CONTINUES;
        }
        Trailer {
            prev_end,
            key_hash: (self.hasher)(key),
            payload_len: value.len() as u64,
            // Keys were checked to be 1..=65535 bytes.
            key_len: key.len() as u16,
            flags,
            crc: 0,
        }
    }

    /// Writes every encoded byte at `start` in the file, in calls of at most
    /// [`MAX_CALL_BYTES`] (in order, so the last trailer goes last).
    pub(crate) fn write_to(&self, file: &File) -> io::Result<()> {
        let slices: Vec<&[u8]> = self
            .pieces
            .iter()
            .map(|piece| match piece {
                Piece::Scratch(range) => &self.scratch[range.clone()],
                Piece::Borrowed(bytes) => *bytes,
            })
            .collect();
        write_all_vectored_at(file, &slices, self.start)
    }
}

impl Appender<'_> {
    /// Copies every encoded byte into `dst`, which stands for the file from
    /// `start` on and is exactly as long as the encoded entries.
    ///
    /// The last trailer, which is what makes the write valid, is stored
    /// after everything else: a crash in the middle leaves a torn tail, never
    /// a valid trailer over bytes that are not there yet. (Earlier trailers
    /// of a batch carry the "batch continues" flag, so they validate nothing
    /// on their own.)
    pub(crate) fn copy_into(&self, dst: &mut [u8]) {
        assert_eq!(dst.len() as u64, self.end - self.start, "destination size");
        if dst.is_empty() {
            return;
        }
        let (body, last_trailer) = dst.split_at_mut(dst.len() - TRAILER_LEN as usize);
        let mut at = 0;
        for piece in &self.pieces {
            let bytes = match piece {
                Piece::Scratch(range) => &self.scratch[range.clone()],
                Piece::Borrowed(bytes) => bytes,
            };
            let n = bytes.len().min(body.len() - at);
            body[at..at + n].copy_from_slice(&bytes[..n]);
            at += n;
            if n < bytes.len() {
                std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::Release);
                last_trailer.copy_from_slice(&bytes[n..]);
            }
        }
    }
}

/// Writes `slices` back to back from `offset`, each call carrying at most
/// [`MAX_CALL_BYTES`] in at most [`MAX_IOVECS`] buffers.
fn write_all_vectored_at(file: &File, slices: &[&[u8]], mut offset: u64) -> io::Result<()> {
    // Position: slice index and bytes of it already written.
    let (mut at, mut done) = (0usize, 0usize);
    let mut call: Vec<IoSlice<'_>> = Vec::with_capacity(slices.len().min(MAX_IOVECS));
    while at < slices.len() {
        call.clear();
        let mut bytes = 0;
        let (mut i, mut from) = (at, done);
        while i < slices.len() && call.len() < MAX_IOVECS && bytes < MAX_CALL_BYTES {
            let rest = &slices[i][from..];
            let take = rest.len().min(MAX_CALL_BYTES - bytes);
            if take > 0 {
                call.push(IoSlice::new(&rest[..take]));
                bytes += take;
            }
            if take < rest.len() {
                break;
            }
            i += 1;
            from = 0;
        }
        if bytes == 0 {
            break;
        }
        let written = match rustix::io::pwritev(file, &call, offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        offset += written as u64;
        // Advance the position by what was written.
        let mut left = written;
        while left > 0 {
            let rest = slices[at].len() - done;
            if left < rest {
                done += left;
                left = 0;
            } else {
                left -= rest;
                at += 1;
                done = 0;
            }
        }
        while at < slices.len() && slices[at].len() == done {
            at += 1;
            done = 0;
        }
    }
    Ok(())
}

/// Checks a key's length.
pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() || key.len() > mmblob_entry::format::MAX_KEY_LEN {
        return Err(Error::InvalidKey { len: key.len() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmblob_entry::checksum::key_hash;

    /// Writes split into calls of at most 64 KiB still put every byte in
    /// place: slices larger than a call, empty ones, and more than fit one
    /// call's buffer list.
    #[test]
    fn vectored_writes_in_bounded_calls_put_every_byte_in_place() {
        use std::os::unix::fs::FileExt;
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let small: Vec<Vec<u8>> = (0..3000u32)
            .map(|i| vec![(i % 7) as u8 + 1; (i % 5) as usize])
            .collect();
        let mut slices: Vec<&[u8]> = vec![&big[..70_000], b"", &big];
        slices.extend(small.iter().map(Vec::as_slice));
        slices.push(&big[..65_536]);
        let file = tempfile::tempfile().expect("temp file");
        write_all_vectored_at(&file, &slices, 10).expect("write");
        let expected: Vec<u8> = slices.concat();
        let mut back = vec![0u8; expected.len()];
        file.read_exact_at(&mut back, 10).expect("read");
        assert!(back == expected);
        assert_eq!(
            file.metadata().expect("meta").len(),
            10 + expected.len() as u64
        );
    }

    /// Every entry's stored checksum equals the one computed part by part,
    /// for copied values (checksummed in one call over the buffer) and
    /// borrowed ones (checksummed from the caller's memory).
    #[test]
    fn copied_and_borrowed_entries_carry_the_same_checksum_as_computed_by_parts() {
        let store_id = 0x0123_4567_89ab_cdef;
        let long = vec![9u8; BORROW_THRESHOLD + 3];
        let values: [&[u8]; 4] = [b"", b"short", &[7u8; 64], &long];
        let mut appender = Appender::new(store_id, key_hash, 64);
        for (i, value) in values.iter().enumerate() {
            appender.push(b"key", value, i == 0, i + 1 < values.len(), i);
        }
        let mut file: Vec<u8> = vec![0; 64];
        for piece in &appender.pieces {
            file.extend_from_slice(match piece {
                Piece::Scratch(range) => &appender.scratch[range.clone()],
                Piece::Borrowed(bytes) => bytes,
            });
        }
        for (entry, value) in appender.entries().iter().zip(values) {
            let end = usize::try_from(entry.end).expect("small offsets");
            let at = end - TRAILER_LEN as usize;
            let trailer = Trailer::decode(file[at..end].try_into().expect("32 bytes"));
            let key_at = at - 3;
            assert_eq!(&file[key_at..at], b"key");
            assert_eq!(&file[key_at - value.len()..key_at], value);
            assert_eq!(trailer.crc, trailer.compute_crc(store_id, value, b"key"));
        }
    }
}
