//! Where an index table's slots live: on the heap, or mapped copy-on-write
//! straight from the index sidecar.
//!
//! Mapping a loaded table instead of reading it into fresh memory makes
//! opening a large store cost one `mmap` per shard plus the checksum pass:
//! no copy, and no page fault per 4 KiB of fresh anonymous memory. Pages
//! are copied privately only when the store first changes them; untouched
//! ones stay shared with the page cache, which may drop and re-read them.
//!
//! Slots are atomics because lookups read them without a lock while the
//! store's writer changes them (see `index.rs`); on x86-64 a relaxed atomic
//! load or store is a plain `mov`.

use std::fs::File;
use std::io;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use memmap2::{MmapMut, MmapOptions};
use xxhash_rust::xxh3::xxh3_64;

use crate::table::Slot;

/// A [`Slot`] that may be read while it is written.
#[repr(C)]
pub(crate) struct AtomicSlot {
    hash: AtomicU64,
    end: AtomicU64,
}

impl AtomicSlot {
    pub(crate) fn load(&self) -> Slot {
        Slot {
            hash: self.hash.load(Relaxed),
            end: self.end.load(Relaxed),
        }
    }

    pub(crate) fn store(&self, slot: Slot) {
        self.hash.store(slot.hash, Relaxed);
        self.end.store(slot.end, Relaxed);
    }

    pub(crate) fn set_end(&self, end: u64) {
        self.end.store(end, Relaxed);
    }
}

/// The slots of one table.
pub(crate) enum SlotStore {
    Heap(Box<[AtomicSlot]>),
    /// `count` slots at the start of a private map of the sidecar.
    Mapped {
        map: MmapMut,
        count: usize,
    },
}

impl SlotStore {
    /// `count` empty slots on the heap.
    pub(crate) fn vacant(count: usize) -> SlotStore {
        SlotStore::Heap(
            (0..count)
                .map(|_| AtomicSlot {
                    hash: AtomicU64::new(0),
                    end: AtomicU64::new(0),
                })
                .collect(),
        )
    }

    /// `count` slots of `file` starting at byte `offset`, mapped
    /// copy-on-write, or `None` if their xxh3 is not `digest`. The caller
    /// has checked that the file holds them.
    pub(crate) fn map(
        file: &File,
        offset: u64,
        count: usize,
        digest: u64,
    ) -> io::Result<Option<SlotStore>> {
        if count == 0 {
            return Ok(Some(SlotStore::Heap(Box::default())));
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
        // Slots are 8-byte aligned in the sidecar; refuse a misaligned one
        // rather than fail later.
        if bytemuck::try_cast_slice::<u8, Slot>(&map).is_err() {
            return Err(io::Error::other("misaligned slots"));
        }
        // Checked before the bytes are shared as atomics.
        Ok((xxh3_64(&map) == digest).then_some(SlotStore::Mapped { map, count }))
    }
}

impl Deref for SlotStore {
    type Target = [AtomicSlot];

    fn deref(&self) -> &[AtomicSlot] {
        match self {
            SlotStore::Heap(slots) => slots,
            SlotStore::Mapped { map, count } => {
                // SAFETY: `map` holds `count` slots (its length was set from
                // `count` in `SlotStore::map`) at an 8-byte aligned address
                // (checked there); `AtomicSlot` is two `AtomicU64`, which
                // have the size and alignment of `u64`, so it has the layout
                // of `Slot`. The bytes live as long as `map`, which `self`
                // owns, and once the store exists they are only ever
                // accessed through this atomic view.
                unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<AtomicSlot>(), *count) }
            }
        }
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
