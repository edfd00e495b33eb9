//! On-disk format, version 1: the file header and the entry trailer.
//!
//! ```text
//! header (64 B at offset 0)
//!   0..8   magic  89 4D 4D 42 0D 0A 1A 0A  ("\x89MMB\r\n\x1a\n")
//!   8..12  format version, u32 LE (1)
//!  12..16  payload alignment, u32 LE (64)
//!  16..24  store id, u64 LE (random)
//!  24..60  reserved, zero
//!  60..64  CRC-32 of bytes 0..60, u32 LE
//!
//! entry = [pre-pad][payload][key][trailer], trailer (32 B):
//!   0..8   prev_end     u64 LE  end of the previous entry (64 for the first)
//!   8..16  key_hash     u64 LE  xxh3-64 of the key
//!  16..24  payload_len  u64 LE
//!  24..26  key_len      u16 LE  1..=65535
//!  26..28  flags        u16 LE  bit 0 tombstone, bit 1 batch continues
//!  28..32  crc          u32 LE  CRC-32 of payload, key, trailer[0..28],
//!                               seeded with the store id
//! ```
//!
//! The payload of a non-empty value starts at `align_up(prev_end)`; an empty
//! payload starts at `prev_end`. A trailer is only believed when its numbers
//! agree with the position it was found at (see [`Trailer::layout`]).

use crate::checksum::EntryCrc;

/// First eight bytes of every store file.
pub const MAGIC: [u8; 8] = *b"\x89MMB\r\n\x1a\n";
/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Alignment of every non-empty payload in the file (and so in the map).
pub const ALIGNMENT: u64 = 64;
/// Length of the file header; the first entry starts here.
pub const HEADER_LEN: u64 = 64;
/// Length of the trailer that ends every entry.
pub const TRAILER_LEN: u64 = 32;
/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = u16::MAX as usize;
/// Longest value, in bytes.
pub const MAX_VALUE_LEN: u64 = 1 << 63;
/// The smallest offset at which an entry can end (header, 1-byte key, trailer).
pub const MIN_ENTRY_END: u64 = HEADER_LEN + 1 + TRAILER_LEN;

/// Trailer flag: the entry deletes its key.
pub const FLAG_TOMBSTONE: u16 = 1;
/// Trailer flag: more entries of the same atomic batch follow this one.
pub const FLAG_BATCH_CONTINUES: u16 = 2;
const KNOWN_FLAGS: u16 = FLAG_TOMBSTONE | FLAG_BATCH_CONTINUES;

/// Rounds `offset` up to the next multiple of [`ALIGNMENT`], or `None` on overflow.
#[must_use]
pub const fn align_up(offset: u64) -> Option<u64> {
    match offset.checked_add(ALIGNMENT - 1) {
        Some(x) => Some(x & !(ALIGNMENT - 1)),
        None => None,
    }
}

/// Where the payload of an entry following `prev_end` starts.
#[must_use]
pub const fn payload_start(prev_end: u64, payload_len: u64) -> Option<u64> {
    if payload_len == 0 {
        Some(prev_end)
    } else {
        align_up(prev_end)
    }
}

/// Why a file's first 64 bytes are not a usable header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The file does not start with [`MAGIC`]: not a store.
    NotMagic,
    /// Shorter than a header but starts like one.
    Truncated(usize),
    /// The header checksum does not match.
    Checksum {
        /// Stored CRC.
        expected: u32,
        /// Computed CRC.
        got: u32,
    },
    /// A format version this build does not know.
    Version(u32),
    /// A payload alignment other than 64.
    Alignment(u32),
}

/// The decoded file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Random id of the store; seeds every entry checksum.
    pub store_id: u64,
}

impl Header {
    /// Encodes the header as its 64 on-disk bytes.
    #[must_use]
    pub fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0u8; HEADER_LEN as usize];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&(ALIGNMENT as u32).to_le_bytes());
        out[16..24].copy_from_slice(&self.store_id.to_le_bytes());
        let crc = crc32fast::hash(&out[..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and checks a header from the first bytes of a file.
    ///
    /// # Errors
    /// [`HeaderError`] says why the bytes are not a header this build can use.
    pub fn decode(bytes: &[u8]) -> Result<Header, HeaderError> {
        let magic_len = bytes.len().min(MAGIC.len());
        if bytes[..magic_len] != MAGIC[..magic_len] {
            return Err(HeaderError::NotMagic);
        }
        if bytes.len() < HEADER_LEN as usize {
            return Err(HeaderError::Truncated(bytes.len()));
        }
        let expected = le_u32(&bytes[60..64]);
        let got = crc32fast::hash(&bytes[..60]);
        if expected != got {
            return Err(HeaderError::Checksum { expected, got });
        }
        let version = le_u32(&bytes[8..12]);
        if version != FORMAT_VERSION {
            return Err(HeaderError::Version(version));
        }
        let alignment = le_u32(&bytes[12..16]);
        if u64::from(alignment) != ALIGNMENT {
            return Err(HeaderError::Alignment(alignment));
        }
        Ok(Header {
            store_id: le_u64(&bytes[16..24]),
        })
    }
}

/// The fixed 32-byte record that ends every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// End offset of the previous entry (64 for the first entry).
    pub prev_end: u64,
    /// xxh3-64 of the key.
    pub key_hash: u64,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// Key length in bytes.
    pub key_len: u16,
    /// [`FLAG_TOMBSTONE`], [`FLAG_BATCH_CONTINUES`].
    pub flags: u16,
    /// Seeded CRC-32 of payload, key and the first 28 trailer bytes.
    pub crc: u32,
}

/// Where the parts of one entry lie in the file, as implied by its trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLayout {
    /// End of the previous entry.
    pub prev_end: u64,
    /// First payload byte.
    pub payload_start: u64,
    /// Payload length.
    pub payload_len: u64,
    /// First key byte (just past the payload).
    pub key_start: u64,
    /// Key length.
    pub key_len: u16,
    /// First trailer byte.
    pub trailer_start: u64,
}

impl EntryLayout {
    /// Offset just past the trailer: the end of the entry.
    #[must_use]
    pub const fn end(&self) -> u64 {
        self.trailer_start + TRAILER_LEN
    }
}

impl Trailer {
    /// Encodes the trailer; `crc` is written as stored in `self`.
    #[must_use]
    pub fn encode(&self) -> [u8; TRAILER_LEN as usize] {
        let mut out = [0u8; TRAILER_LEN as usize];
        out[0..8].copy_from_slice(&self.prev_end.to_le_bytes());
        out[8..16].copy_from_slice(&self.key_hash.to_le_bytes());
        out[16..24].copy_from_slice(&self.payload_len.to_le_bytes());
        out[24..26].copy_from_slice(&self.key_len.to_le_bytes());
        out[26..28].copy_from_slice(&self.flags.to_le_bytes());
        out[28..32].copy_from_slice(&self.crc.to_le_bytes());
        out
    }

    /// Decodes the 32 trailer bytes; no validation (see [`Trailer::layout`]).
    #[must_use]
    pub fn decode(bytes: &[u8; TRAILER_LEN as usize]) -> Trailer {
        Trailer {
            prev_end: le_u64(&bytes[0..8]),
            key_hash: le_u64(&bytes[8..16]),
            payload_len: le_u64(&bytes[16..24]),
            key_len: u16::from_le_bytes([bytes[24], bytes[25]]),
            flags: u16::from_le_bytes([bytes[26], bytes[27]]),
            crc: le_u32(&bytes[28..32]),
        }
    }

    /// The entry layout this trailer implies when it ends at `end`, or `None`
    /// when its numbers contradict that position (so it is not a trailer).
    #[must_use]
    pub fn layout(&self, end: u64) -> Option<EntryLayout> {
        let trailer_start = end.checked_sub(TRAILER_LEN)?;
        if self.key_len == 0
            || self.flags & !KNOWN_FLAGS != 0
            || self.payload_len > MAX_VALUE_LEN
            || self.prev_end < HEADER_LEN
            || self.prev_end >= trailer_start
            || (self.is_tombstone() && self.payload_len != 0)
        {
            return None;
        }
        let payload_start = payload_start(self.prev_end, self.payload_len)?;
        let key_start = payload_start.checked_add(self.payload_len)?;
        if key_start.checked_add(u64::from(self.key_len))? != trailer_start {
            return None;
        }
        Some(EntryLayout {
            prev_end: self.prev_end,
            payload_start,
            payload_len: self.payload_len,
            key_start,
            key_len: self.key_len,
            trailer_start,
        })
    }

    /// The checksum of an entry with this trailer over `payload` and `key`.
    #[must_use]
    pub fn compute_crc(&self, store_id: u64, payload: &[u8], key: &[u8]) -> u32 {
        let mut crc = EntryCrc::new(store_id);
        crc.update(payload);
        crc.update(key);
        crc.finish_with(self)
    }

    /// The bytes covered by the checksum at the end of an entry.
    #[must_use]
    pub fn checked_prefix(&self) -> [u8; 28] {
        let mut out = [0u8; 28];
        out.copy_from_slice(&self.encode()[..28]);
        out
    }

    /// True when the entry deletes its key.
    #[must_use]
    pub const fn is_tombstone(&self) -> bool {
        self.flags & FLAG_TOMBSTONE != 0
    }

    /// True when more entries of the same batch follow this one.
    #[must_use]
    pub const fn batch_continues(&self) -> bool {
        self.flags & FLAG_BATCH_CONTINUES != 0
    }
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(bytes);
    u32::from_le_bytes(buf)
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(bytes);
    u64::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trailer(prev_end: u64, payload_len: u64, key_len: u16) -> Trailer {
        Trailer {
            prev_end,
            key_hash: 7,
            payload_len,
            key_len,
            flags: 0,
            crc: 0,
        }
    }

    #[test]
    fn trailer_round_trips() {
        let t = Trailer {
            prev_end: 0x0102_0304_0506_0708,
            key_hash: u64::MAX,
            payload_len: 12345,
            key_len: 65535,
            flags: FLAG_BATCH_CONTINUES,
            crc: 0xdead_beef,
        };
        assert_eq!(Trailer::decode(&t.encode()), t);
        assert_eq!(&t.encode()[0..8], &[8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn header_round_trips_and_rejects_changes() {
        let h = Header { store_id: 42 };
        let bytes = h.encode();
        assert_eq!(Header::decode(&bytes), Ok(h));
        for i in 8..64 {
            let mut bad = bytes;
            bad[i] ^= 1;
            assert!(Header::decode(&bad).is_err(), "flip at {i} accepted");
        }
        assert_eq!(Header::decode(b"hello world"), Err(HeaderError::NotMagic));
        assert_eq!(
            Header::decode(&bytes[..10]),
            Err(HeaderError::Truncated(10))
        );
        assert_eq!(Header::decode(&bytes[..3]), Err(HeaderError::Truncated(3)));
    }

    #[test]
    fn layout_places_nonempty_payloads_on_64_byte_boundaries() {
        // Previous entry ended at 100: payload at 128, key at 128+10, trailer after.
        let t = trailer(100, 10, 3);
        let end = 128 + 10 + 3 + 32;
        let layout = t.layout(end).expect("consistent trailer");
        assert_eq!(layout.payload_start, 128);
        assert_eq!(layout.key_start, 138);
        assert_eq!(layout.end(), end);
        assert_eq!(t.layout(end + 1), None);
        assert_eq!(t.layout(end - 1), None);
    }

    #[test]
    fn empty_payload_starts_at_prev_end() {
        let t = trailer(100, 0, 3);
        let layout = t.layout(100 + 3 + 32).expect("consistent trailer");
        assert_eq!(layout.payload_start, 100);
    }

    #[test]
    fn layout_rejects_impossible_numbers() {
        assert_eq!(trailer(64, u64::MAX, 1).layout(200), None);
        assert_eq!(
            trailer(10, 0, 1).layout(10 + 33),
            None,
            "prev_end inside header"
        );
        assert_eq!(trailer(64, 0, 0).layout(96), None, "empty key");
        let mut t = trailer(64, 0, 1);
        t.flags = 0x80;
        assert_eq!(t.layout(97), None, "unknown flag");
        t.flags = FLAG_TOMBSTONE;
        assert!(t.layout(97).is_some());
        let mut t = trailer(64, 5, 1);
        t.flags = FLAG_TOMBSTONE;
        assert_eq!(t.layout(64 + 5 + 1 + 32), None, "tombstone with payload");
    }

    #[test]
    fn align_up_saturates_to_none() {
        assert_eq!(align_up(0), Some(0));
        assert_eq!(align_up(1), Some(64));
        assert_eq!(align_up(64), Some(64));
        assert_eq!(align_up(u64::MAX), None);
    }
}
