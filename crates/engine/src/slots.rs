//! Where an index table's slots live: on the heap, or mapped copy-on-write
//! straight from the index sidecar.
//!
//! Mapping a loaded table instead of reading it into fresh memory makes
//! opening a large store cost one `mmap` per shard plus the checksum pass:
//! no copy, and no page fault per 4 KiB of fresh anonymous memory. Pages
//! are copied privately only when the store first changes them; untouched
//! ones stay shared with the page cache, which may drop and re-read them.

use std::fs::File;
use std::io;
use std::ops::{Deref, DerefMut};

use memmap2::{MmapMut, MmapOptions};

use crate::table::Slot;

/// The slots of one table.
pub(crate) enum SlotStore {
    Heap(Box<[Slot]>),
    /// `count` slots at the start of a private map of the sidecar.
    Mapped {
        map: MmapMut,
        count: usize,
    },
}

impl SlotStore {
    /// `count` slots of `file` starting at byte `offset`, mapped
    /// copy-on-write. The caller has checked that the file holds them.
    pub(crate) fn map(file: &File, offset: u64, count: usize) -> io::Result<SlotStore> {
        if count == 0 {
            return Ok(SlotStore::Heap(Box::default()));
        }
        let len = count
            .checked_mul(size_of::<Slot>())
            .ok_or_else(|| io::Error::other("slot count overflows"))?;
        // SAFETY: a private (copy-on-write) map never writes to the file.
        // mmblob never writes a sidecar in place or truncates it: a new one
        // is written to a temporary file and renamed over the old, which
        // leaves this map on the old file. As with the store file itself,
        // another program truncating the sidecar while the store is open
        // would make reads of the cut pages fault.
        let map = unsafe { MmapOptions::new().offset(offset).len(len).map_copy(file)? };
        let store = SlotStore::Mapped { map, count };
        // Slots are 8-byte aligned in the sidecar; refuse a misaligned one
        // rather than fail later.
        if bytemuck::try_cast_slice::<u8, Slot>(store.bytes()).is_err() {
            return Err(io::Error::other("misaligned slots"));
        }
        Ok(store)
    }

    fn bytes(&self) -> &[u8] {
        match self {
            SlotStore::Heap(slots) => bytemuck::cast_slice(slots),
            SlotStore::Mapped { map, count } => &map[..count * size_of::<Slot>()],
        }
    }
}

impl Deref for SlotStore {
    type Target = [Slot];

    fn deref(&self) -> &[Slot] {
        match self {
            SlotStore::Heap(slots) => slots,
            // Alignment and length were checked in `map`.
            SlotStore::Mapped { .. } => bytemuck::cast_slice(self.bytes()),
        }
    }
}

impl DerefMut for SlotStore {
    fn deref_mut(&mut self) -> &mut [Slot] {
        match self {
            SlotStore::Heap(slots) => slots,
            SlotStore::Mapped { map, count } => {
                bytemuck::cast_slice_mut(&mut map[..*count * size_of::<Slot>()])
            }
        }
    }
}

impl Clone for SlotStore {
    fn clone(&self) -> Self {
        SlotStore::Heap(self.to_vec().into_boxed_slice())
    }
}

impl std::fmt::Debug for SlotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = match self {
            SlotStore::Heap(_) => "heap",
            SlotStore::Mapped { .. } => "mapped",
        };
        write!(f, "{} slots ({place})", self.len())
    }
}

impl From<Box<[Slot]>> for SlotStore {
    fn from(slots: Box<[Slot]>) -> Self {
        SlotStore::Heap(slots)
    }
}
