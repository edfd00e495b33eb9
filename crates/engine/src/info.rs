//! Metadata without reading values: [`DataStore::entry_info`] and
//! [`DataStore::last_entry`].

use std::ops::Range;
use std::sync::Arc;

use mmblob_entry::EntryHandle;
use mmblob_entry::format::{FLAG_BATCH_CONTINUES, HEADER_LEN, TRAILER_LEN, Trailer};

use crate::append::check_key;
use crate::error::{Error, Result};
use crate::read::unreadable_value;
use crate::store::DataStore;

/// What the trailer of a stored entry says; see [`DataStore::entry_info`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryInfo {
    /// The stored key.
    pub key: Vec<u8>,
    /// Length of the value in bytes.
    pub len: u64,
    /// Where the value lies in the file (64-byte aligned when non-empty).
    pub payload_range: Range<u64>,
    /// The whole entry in the file: padding, value, key and trailer. Its
    /// end is the offset the write that stored it returned.
    pub entry_range: Range<u64>,
    /// File offset of the 32-byte trailer.
    pub trailer_offset: u64,
    /// The stored CRC-32 (seeded with the store id) of value, key and
    /// trailer; not recomputed (see [`EntryHandle::verify_checksum`]).
    pub checksum: u32,
    /// xxh3-64 of the key, as stored.
    pub key_hash: u64,
    /// True for a deletion marker. Lookups by key only find live entries,
    /// so this is false for what [`DataStore::entry_info`] returns.
    pub tombstone: bool,
    /// True when the entry was written by a batch that continues after it.
    pub batch_continues: bool,
}

impl EntryInfo {
    fn from_trailer(key: &[u8], trailer: &Trailer, end: u64) -> Option<EntryInfo> {
        let layout = trailer.layout(end)?;
        Some(EntryInfo {
            key: key.to_vec(),
            len: trailer.payload_len,
            payload_range: layout.payload_start..layout.key_start,
            entry_range: trailer.prev_end..end,
            trailer_offset: layout.trailer_start,
            checksum: trailer.crc,
            key_hash: trailer.key_hash,
            tombstone: trailer.is_tombstone(),
            batch_continues: trailer.flags & FLAG_BATCH_CONTINUES != 0,
        })
    }
}

impl DataStore {
    /// Length, offsets, checksum and flags of the value stored under `key`,
    /// read from its 32-byte trailer (and the key bytes the index compares)
    /// without touching the value; `None` if `key` holds no value.
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; [`Error::Corrupt`] if the indexed trailer
    /// cannot be read back.
    pub fn entry_info(&self, key: impl AsRef<[u8]>) -> Result<Option<EntryInfo>> {
        let key = key.as_ref();
        check_key(key)?;
        let Some((map, end)) = self.index.get(self.hash(key), key) else {
            return Ok(None);
        };
        let raw = end
            .checked_sub(TRAILER_LEN)
            .and_then(|start| map.bytes(start..end))
            .ok_or_else(|| unreadable_value(end))?;
        let mut trailer = [0u8; TRAILER_LEN as usize];
        trailer.copy_from_slice(raw);
        EntryInfo::from_trailer(key, &Trailer::decode(&trailer), end)
            .map(Some)
            .ok_or_else(|| unreadable_value(end))
    }

    /// The newest live entry: the last value written that is neither
    /// deleted nor overwritten since; `None` for a store without live keys.
    ///
    /// Walks the trailer chain back from the end of the file, so it costs
    /// one step per entry written after the one it returns (deletions and
    /// overwrites).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the chain leads into damaged bytes before a
    /// live entry is found.
    pub fn last_entry(&self) -> Result<Option<EntryHandle>> {
        'file: loop {
            if self.is_empty() {
                return Ok(None);
            }
            let (map, tail) = {
                let state = self.lock_state();
                (Arc::clone(&state.map), state.tail)
            };
            let mut end = tail;
            while end > HEADER_LEN {
                let entry = EntryHandle::at(Arc::clone(&map), end)?;
                let trailer = *entry.trailer();
                if !trailer.is_tombstone() {
                    match self.index.get(self.hash(entry.key()), entry.key()) {
                        // A compaction replaced the file since: start over.
                        Some((live, _)) if live.store_id() != map.store_id() => continue 'file,
                        Some((_, live_end)) if live_end == end => return Ok(Some(entry)),
                        _ => {}
                    }
                }
                end = trailer.prev_end;
            }
            if self.is_empty() {
                return Ok(None);
            }
            // A compaction or newer writes since the walk began: look again.
            let state = self.lock_state();
            if state.store_id != map.store_id() || state.tail != tail {
                continue 'file;
            }
            return Err(Error::Corrupt {
                offset: end,
                reason: "the trailer chain ended before reaching a live entry".to_owned(),
            });
        }
    }
}
