//! Zero-copy handles to stored values.

use std::ops::{Deref, Range};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{TRAILER_LEN, Trailer};
use crate::lease::{LeaseRef, ScopedLease};
use crate::mapping::Mapping;
use crate::stream::EntryStream;

/// A stored value, read in place from the memory map.
///
/// Dereferences to the payload bytes without copying. The handle holds a
/// counted reference to a *lease* on the map it points into (see the
/// crate docs, "Leases"), so it stays valid and unchanged after the store
/// appends, re-maps, compacts or is dropped. Making, cloning and dropping
/// handles on one thread writes no memory that another thread writes: the
/// lease belongs to that thread and counts without atomic instructions.
/// Handles may be sent to and dropped on any thread.
#[derive(Clone)]
pub struct EntryHandle {
    lease: LeaseRef,
    trailer: Trailer,
    payload_start: u64,
    end: u64,
}

impl std::fmt::Debug for EntryHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryHandle")
            .field("key", &crate::display_key(self.key()))
            .field("offset_range", &self.offset_range())
            .finish_non_exhaustive()
    }
}

impl EntryHandle {
    /// The entry that ends at file offset `end` in `map`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the bytes before `end` are not a consistent
    /// trailer, or the entry is not within the readable part of the map.
    #[doc(hidden)]
    pub fn at(map: Arc<Mapping>, end: u64) -> Result<EntryHandle> {
        EntryHandle::at_in(&map, end)
    }

    /// [`EntryHandle::at`] without taking an `Arc` of the map: the handle
    /// counts on the calling thread's lease on `map` (made on the thread's
    /// first handle into it), which touches no shared cache line.
    ///
    /// # Errors
    /// As [`EntryHandle::at`].
    #[inline]
    pub fn at_in(map: &Arc<Mapping>, end: u64) -> Result<EntryHandle> {
        let (trailer, payload_start) = EntryHandle::decode(map, end)?;
        Ok(EntryHandle {
            lease: LeaseRef::for_map(map),
            trailer,
            payload_start,
            end,
        })
    }

    /// [`EntryHandle::at`] for an entry of the map `lease` holds, counted
    /// on that lease.
    ///
    /// # Errors
    /// As [`EntryHandle::at`].
    #[inline]
    pub fn at_leased(lease: &ScopedLease, end: u64) -> Result<EntryHandle> {
        let (trailer, payload_start) = EntryHandle::decode(lease.map(), end)?;
        Ok(EntryHandle {
            lease: lease.reference(),
            trailer,
            payload_start,
            end,
        })
    }

    /// A handle that counts on a reference count of its own (one shared
    /// atomic counter, like an `Arc`), tied to no thread's lease: for a
    /// handle that will be cloned and dropped mostly on other threads.
    ///
    /// # Errors
    /// As [`EntryHandle::at`].
    pub fn at_unowned(map: &Arc<Mapping>, end: u64) -> Result<EntryHandle> {
        let (trailer, payload_start) = EntryHandle::decode(map, end)?;
        Ok(EntryHandle {
            lease: LeaseRef::unowned(map),
            trailer,
            payload_start,
            end,
        })
    }

    /// A handle for an entry already decoded by [`EntryHandle::decode`].
    #[inline]
    pub(crate) fn from_parts(
        map: &Arc<Mapping>,
        trailer: Trailer,
        payload_start: u64,
        end: u64,
    ) -> EntryHandle {
        EntryHandle {
            lease: LeaseRef::for_map(map),
            trailer,
            payload_start,
            end,
        }
    }

    /// The trailer and payload start of the entry ending at `end` in `map`.
    #[inline]
    pub(crate) fn decode(map: &Mapping, end: u64) -> Result<(Trailer, u64)> {
        let corrupt = |reason: &str| Error::Corrupt {
            offset: end.saturating_sub(TRAILER_LEN),
            reason: reason.to_owned(),
        };
        let trailer_start = end
            .checked_sub(TRAILER_LEN)
            .ok_or_else(|| corrupt("entry end inside the header"))?;
        let bytes = map
            .bytes(trailer_start..end)
            .ok_or_else(|| corrupt("entry lies past the readable end of the file"))?;
        let mut raw = [0u8; TRAILER_LEN as usize];
        raw.copy_from_slice(bytes);
        let trailer = Trailer::decode(&raw);
        let layout = trailer
            .layout(end)
            .ok_or_else(|| corrupt("trailer does not match its position"))?;
        Ok((trailer, layout.payload_start))
    }

    #[inline]
    fn part(&self, start: u64, len: u64) -> &[u8] {
        // SAFETY: `at` checked that the whole entry (`..self.end`) is readable,
        // and the readable mark never goes down; `start..start + len` lies
        // within the entry by the trailer layout checked in `at`.
        unsafe { self.lease.map().bytes_unchecked(start, len) }
    }

    /// The payload bytes (same as dereferencing).
    #[must_use]
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        self.part(self.payload_start, self.trailer.payload_len)
    }

    /// The key this value is stored under.
    #[must_use]
    #[inline]
    pub fn key(&self) -> &[u8] {
        self.part(self.key_start(), u64::from(self.trailer.key_len))
    }

    fn key_start(&self) -> u64 {
        self.payload_start + self.trailer.payload_len
    }

    /// xxh3-64 of the key, as stored in the trailer.
    #[must_use]
    pub fn key_hash(&self) -> u64 {
        self.trailer.key_hash
    }

    /// Payload length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.trailer.payload_len as usize
    }

    /// True for an empty value.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.trailer.payload_len == 0
    }

    /// Where the payload lies in the file.
    #[must_use]
    pub fn offset_range(&self) -> Range<u64> {
        self.payload_start..self.key_start()
    }

    /// Offset just past this entry's trailer (the value `write` returned).
    #[must_use]
    pub fn end_offset(&self) -> u64 {
        self.end
    }

    /// The decoded trailer of this entry.
    #[doc(hidden)]
    #[must_use]
    pub fn trailer(&self) -> &Trailer {
        &self.trailer
    }

    /// The map this handle reads from.
    #[doc(hidden)]
    #[must_use]
    pub fn mapping(&self) -> &Arc<Mapping> {
        self.lease.map()
    }

    /// Views the payload as a slice of `T` without copying.
    ///
    /// Payloads start on 64-byte boundaries, so any `T` with alignment up to
    /// 64 can be viewed.
    ///
    /// # Errors
    /// [`Error::TypedView`] when the length is not a multiple of `size_of::<T>()`
    /// (or `T` needs more than 64-byte alignment).
    pub fn as_typed<T: bytemuck::Pod>(&self) -> Result<&[T]> {
        typed(self.as_slice())
    }

    /// A `Read + BufRead + Seek` stream over the payload that copies nothing
    /// until you read into your own buffer.
    #[must_use]
    pub fn stream(&self) -> EntryStream {
        EntryStream::new(self.clone())
    }

    /// Recomputes the entry's checksum and compares it with the stored one.
    #[must_use]
    pub fn verify_checksum(&self) -> bool {
        self.checksum_error().is_none()
    }

    /// Like [`EntryHandle::verify_checksum`], but says what did not match.
    #[must_use]
    pub fn checksum_error(&self) -> Option<Error> {
        let got = self
            .trailer
            .compute_crc(self.mapping().store_id(), self.as_slice(), self.key());
        if got == self.trailer.crc {
            None
        } else {
            Some(Error::ChecksumMismatch {
                offset: self.end - TRAILER_LEN,
                expected: self.trailer.crc,
                got,
            })
        }
    }
}

impl Deref for EntryHandle {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for EntryHandle {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// Two handles are equal when they hold the same key and the same value
/// bytes, wherever they are stored.
impl PartialEq for EntryHandle {
    fn eq(&self, other: &EntryHandle) -> bool {
        self.key() == other.key() && self.as_slice() == other.as_slice()
    }
}

impl Eq for EntryHandle {}

impl PartialEq<[u8]> for EntryHandle {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[u8]> for EntryHandle {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_slice() == *other
    }
}

/// `bytes` as a slice of `T`; see [`EntryHandle::as_typed`].
pub(crate) fn typed<T: bytemuck::Pod>(bytes: &[u8]) -> Result<&[T]> {
    if bytes.is_empty() {
        return Ok(&[]);
    }
    bytemuck::try_cast_slice(bytes).map_err(|_| Error::TypedView {
        len: bytes.len(),
        type_name: std::any::type_name::<T>(),
        size: size_of::<T>(),
        align: align_of::<T>(),
    })
}
