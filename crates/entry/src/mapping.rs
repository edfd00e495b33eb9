//! The shared memory map of a store file.
//!
//! The `unsafe` of reading the map lives here (the handles' reference
//! counting is in `lease.rs`). A [`Mapping`] reserves address space
//! for more than the file holds (so the writer need not re-map on every
//! append) and tracks how many bytes at the start of the file are *readable*:
//! written, committed, and never to be changed or truncated while the mapping
//! exists. Safe code can only ever see bytes below that mark.
//!
//! The writer of a store may at the same time write the file *above* that
//! mark through a second, writable shared map of space it allocated ahead
//! (the engine's write path). Both maps share the page cache, so the bytes
//! it copies become visible here; it raises the readable mark (a release
//! store, read with acquire ordering) only after the copy is complete and
//! never writes below the mark again. So the readable prefix still never
//! changes while mapped, which is all this type relies on.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use memmap2::{Mmap, MmapOptions};

/// A read-only shared map of a store file plus the length known to be safe to read.
pub struct Mapping {
    map: Option<Mmap>,
    capacity: u64,
    store_id: u64,
    readable: AtomicU64,
    /// Set when the store stopped reading through this map (see [`Mapping::retire`]).
    retired: AtomicBool,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("capacity", &self.capacity)
            .field("readable", &self.readable_len())
            .field("store_id", &format_args!("{:#018x}", self.store_id))
            .finish()
    }
}

impl Mapping {
    /// Maps `capacity` bytes of `file` (which may exceed the file's length),
    /// of which the first `readable` are exposed.
    ///
    /// # Errors
    /// The `mmap` call failed (for example the address space is exhausted).
    ///
    /// # Safety
    /// The first `readable` bytes of `file` must exist and must not be
    /// modified or truncated for as long as the returned mapping (or any
    /// clone of an `Arc` holding it) lives. mmblob guarantees this for its own
    /// files: it only appends past the committed end, cuts only bytes that
    /// were never committed, and compacts into a new file. Another program
    /// rewriting or truncating the file breaks the guarantee.
    pub unsafe fn new(
        file: &File,
        capacity: u64,
        readable: u64,
        store_id: u64,
    ) -> io::Result<Self> {
        assert!(readable <= capacity, "readable part beyond the mapping");
        let map = if capacity == 0 {
            None
        } else {
            let len = usize::try_from(capacity).map_err(io::Error::other)?;
            // SAFETY: the caller promises the readable prefix is stable for the
            // mapping's life; pages past the file's end are reserved address
            // space that safe code never reaches (see `bytes`).
            Some(unsafe { MmapOptions::new().len(len).map(file)? })
        };
        Ok(Mapping {
            map,
            capacity,
            store_id,
            readable: AtomicU64::new(readable),
            retired: AtomicBool::new(false),
        })
    }

    /// The id of the store this map belongs to (seeds entry checksums).
    #[must_use]
    pub fn store_id(&self) -> u64 {
        self.store_id
    }

    /// Bytes of address space reserved by the mapping.
    #[must_use]
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Length of the prefix of the file that may be read through this map.
    #[must_use]
    #[inline]
    pub fn readable_len(&self) -> u64 {
        self.readable.load(Ordering::Acquire)
    }

    /// Marks the map as no longer read through by its store (the store
    /// re-mapped the file, compacted it or was dropped). Handles into it stay
    /// valid; threads let go of their cached leases on it (see
    /// [`release_thread_leases`](crate::release_thread_leases)) the next time
    /// they read, so it is unmapped as soon as its last handle is gone.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// True once [`Mapping::retire`] was called.
    #[must_use]
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Raises the readable mark to `len` (never lowers it).
    ///
    /// # Safety
    /// The file must hold at least `len` bytes, and bytes below `len` must not
    /// change or be truncated for the mapping's life (see [`Mapping::new`]).
    pub unsafe fn extend_readable(&self, len: u64) {
        assert!(len <= self.capacity, "readable part beyond the mapping");
        self.readable.fetch_max(len, Ordering::Release);
    }

    /// The bytes in `range`, or `None` if any of them is not readable.
    #[must_use]
    #[inline]
    pub fn bytes(&self, range: Range<u64>) -> Option<&[u8]> {
        if range.start > range.end || range.end > self.readable_len() {
            return None;
        }
        // SAFETY: the range is within the readable prefix, checked just above.
        Some(unsafe { self.bytes_unchecked(range.start, range.end - range.start) })
    }

    /// The whole readable prefix of the file.
    #[must_use]
    pub fn readable(&self) -> &[u8] {
        let len = self.readable_len();
        // SAFETY: `0..len` is the readable prefix by definition.
        unsafe { self.bytes_unchecked(0, len) }
    }

    /// The bytes at `start..start + len` without checking the readable mark.
    ///
    /// # Safety
    /// `start + len` must not exceed a value that `readable_len` has returned.
    #[inline]
    pub(crate) unsafe fn bytes_unchecked(&self, start: u64, len: u64) -> &[u8] {
        debug_assert!(start + len <= self.readable_len());
        match &self.map {
            // SAFETY: the caller keeps the range inside the readable prefix,
            // which lies inside the mapping (`readable <= capacity`), is backed
            // by file bytes (no SIGBUS) and is never mutated while mapped. The
            // map is alive as long as `self`. usize is 64-bit (checked in lib.rs).
            Some(map) => unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(start as usize), len as usize)
            },
            None => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn only_the_readable_prefix_is_exposed() {
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(b"0123456789").expect("write");
        // SAFETY: the temp file is private to this test and not modified below 10 bytes.
        let map = unsafe { Mapping::new(&file, 1 << 20, 4, 9) }.expect("map");
        assert_eq!(map.readable(), b"0123");
        assert_eq!(map.bytes(2..4), Some(&b"23"[..]));
        assert_eq!(map.bytes(2..5), None);
        // SAFETY: the file holds 10 bytes that stay unchanged.
        unsafe { map.extend_readable(10) };
        assert_eq!(map.bytes(2..10), Some(&b"23456789"[..]));
        // SAFETY: as above; lowering is ignored.
        unsafe { map.extend_readable(3) };
        assert_eq!(map.readable_len(), 10);
    }
}
