//! Entries lent by a scan.

use std::ops::Deref;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{TRAILER_LEN, Trailer};
use crate::handle::{EntryHandle, typed};
use crate::mapping::Mapping;

/// One entry lent by a scan: key and value borrowed straight from the map
/// for as long as the scan's snapshot lives, with no reference count at
/// all. Call [`Entry::to_handle`] for the few entries you want to keep.
#[derive(Clone, Copy)]
pub struct Entry<'a> {
    map: &'a Arc<Mapping>,
    key: &'a [u8],
    value: &'a [u8],
    trailer: Trailer,
    payload_start: u64,
    end: u64,
}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &crate::display_key(self.key))
            .field("len", &self.value.len())
            .field("end_offset", &self.end)
            .finish()
    }
}

impl<'a> Entry<'a> {
    /// The entry that ends at file offset `end` in `map`.
    ///
    /// # Errors
    /// As [`EntryHandle::at`].
    #[inline]
    pub fn at(map: &'a Arc<Mapping>, end: u64) -> Result<Entry<'a>> {
        let (trailer, payload_start) = EntryHandle::decode(map, end)?;
        let key_start = payload_start + trailer.payload_len;
        // `decode` checked that the whole entry lies in the readable part.
        let at = |from: u64, len: u64| {
            map.bytes(from..from + len).ok_or_else(|| Error::Corrupt {
                offset: end.saturating_sub(TRAILER_LEN),
                reason: "entry lies past the readable end of the file".to_owned(),
            })
        };
        Ok(Entry {
            map,
            key: at(key_start, u64::from(trailer.key_len))?,
            value: at(payload_start, trailer.payload_len)?,
            trailer,
            payload_start,
            end,
        })
    }

    /// The key.
    #[must_use]
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// The value bytes.
    #[must_use]
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// The value as a slice of `T`, without copying (see
    /// [`EntryHandle::as_typed`]).
    ///
    /// # Errors
    /// As [`EntryHandle::as_typed`].
    pub fn as_typed<T: bytemuck::Pod>(&self) -> Result<&'a [T]> {
        typed(self.value)
    }

    /// Value length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// True for an empty value.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Offset just past this entry's trailer.
    #[must_use]
    pub fn end_offset(&self) -> u64 {
        self.end
    }

    /// A handle to this entry that outlives the scan (counted on the
    /// calling thread's lease).
    #[must_use]
    pub fn to_handle(&self) -> EntryHandle {
        EntryHandle::from_parts(self.map, self.trailer, self.payload_start, self.end)
    }
}

impl Deref for Entry<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.value
    }
}

impl AsRef<[u8]> for Entry<'_> {
    fn as_ref(&self) -> &[u8] {
        self.value
    }
}
