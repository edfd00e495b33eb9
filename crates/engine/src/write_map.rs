//! The write path through a writable shared map of space reserved ahead.
//!
//! A writable handle keeps a *reservation* after the last entry: file space
//! allocated with `fallocate` (real blocks, read back as zeros) and mapped
//! `MAP_SHARED` with `PROT_WRITE`. A write copies its encoded entries into
//! that map with `memcpy` and publishes them as before (readable mark, index,
//! tail): no system call per write. Bytes in the page cache survive a process
//! crash whether they came through `pwrite` or through a shared map, so
//! [`Durability::Flush`](crate::Durability::Flush) keeps its meaning, and
//! `fdatasync` writes back pages dirtied through the map like any others.
//!
//! Why it is sound (see also the crate docs of `mmblob`):
//!
//! * **No page fault meets a full disk.** Every mapped byte was allocated by
//!   `fallocate` before it was mapped, so storing to it never needs a block
//!   and never raises `SIGBUS`. When no reservation can be had (`ENOSPC`,
//!   `EFBIG` under `RLIMIT_FSIZE`, a quota), the write fails before any byte
//!   of it is stored, with the error of `fallocate`, and the tail stays.
//! * **The file never ends inside the map.** Only this writer changes the
//!   file's length (it holds the exclusive lock). Every truncation of the
//!   file by the writer forgets the map first ([`WriteMap::forget`]), and a
//!   file replaced by compaction is noticed before the next write (the map
//!   remembers which file it belongs to).
//! * **Nobody reads what is being written.** The map is only ever written at
//!   or above the published tail. Readers in this process only reach bytes
//!   below the readable mark of their map, which the writer raises (with
//!   release ordering) after the copy; readers in other processes find new
//!   entries with positional reads and accept an entry only when its checksum
//!   matches, so bytes caught mid-copy are a torn tail to them.
//! * **The trailer is stored last.** The last trailer of a write, which is
//!   what makes it valid, is copied after its payload and key (with a
//!   compiler fence between), so a crash mid-copy leaves a torn tail.
//!
//! Filesystems without `fallocate` (`EOPNOTSUPP`), appends larger than
//! 256 KiB, and a map that cannot be created (address space exhausted) take
//! the `pwrite` path instead. So do streamed values
//! ([`DataStore::write_stream`]): measured here, `pwrite` of 64 KiB pieces
//! into the page cache beats faulting in (and zero-filling) fresh mapped
//! pages for bulk bytes, while for small entries the map saves a system
//! call per write.

use std::fs::File;
use std::io;
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};
use rustix::io::Errno;
use tracing::{debug, warn};

use crate::append::Appender;
use crate::error::Result;
use crate::options::Durability;
use crate::store::{DataStore, State, io_err};

/// Smallest reservation step, and the one for small files.
const MIN_STEP: u64 = 1 << 20;
/// Smallest step under [`Durability::None`], meant for bulk loads.
const BULK_MIN_STEP: u64 = 16 << 20;
/// Largest reservation step: bounds what open must skip after a crash.
pub(crate) const MAX_STEP: u64 = 64 << 20;
/// Window starts and reservation ends are multiples of this (a multiple of
/// every page size Linux uses, as `mmap` offsets must be).
const ALIGN: u64 = 64 << 10;
/// Bytes faulted in ahead of the writes at once.
const POPULATE_STEP: u64 = 1 << 20;
/// Appends longer than this are written with `pwrite` (in 64 KiB calls):
/// for bulk bytes that is cheaper than faulting in fresh mapped pages (which
/// the kernel zero-fills first), while for small entries the map saves a
/// system call per write.
const MAX_MAPPED_APPEND: u64 = 256 << 10;

/// How far ahead to reserve for a file of `len` bytes: an eighth of the
/// file, within `[1 MiB, 64 MiB]` (`[16 MiB, 64 MiB]` for bulk loads).
pub(crate) fn reservation_step(len: u64, durability: Durability) -> u64 {
    let min = if durability == Durability::None {
        BULK_MIN_STEP
    } else {
        MIN_STEP
    };
    (len / 8).clamp(min, MAX_STEP)
}

fn round_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to).saturating_mul(to)
}

/// The writer's reservation and its writable map.
#[derive(Default)]
pub(crate) struct WriteMap {
    /// The file the reservation belongs to.
    file: Option<Arc<File>>,
    /// Writable shared map of `window_start..reserved_end`.
    window: Option<MmapRaw>,
    window_start: u64,
    /// The window is faulted in up to here.
    populated_end: u64,
    /// The tail the last [`WriteMap::prepare`] was given: nothing below it
    /// is ever handed out for writing.
    floor: u64,
    /// The file's length as this writer left it: the end of the reservation.
    reserved_end: u64,
    /// `fallocate` is not supported for this file: always `pwrite`.
    unsupported: bool,
}

impl std::fmt::Debug for WriteMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteMap")
            .field("window_start", &self.window_start)
            .field("reserved_end", &self.reserved_end)
            .field("mapped", &self.window.is_some())
            .field("unsupported", &self.unsupported)
            .finish()
    }
}

impl WriteMap {
    /// Drops the map and everything known about the file's length. Called
    /// before any truncation of the file.
    pub(crate) fn forget(&mut self) {
        self.window = None;
        self.file = None;
    }

    /// The end of the reservation, if one is held for `file`.
    fn reserved_end_of(&self, file: &Arc<File>) -> Option<u64> {
        match &self.file {
            Some(ours) if Arc::ptr_eq(ours, file) => Some(self.reserved_end),
            _ => None,
        }
    }

    /// Records that `pwrite` extended the file to at least `end`.
    fn wrote_through_file(&mut self, file: &Arc<File>, end: u64) {
        if self.reserved_end_of(file).is_some() {
            self.reserved_end = self.reserved_end.max(end);
        }
    }

    /// Makes `from..to` of `file` (all at or above `tail`) writable through
    /// the map. `Ok(false)`: use `pwrite` instead. `Err`: no space could be
    /// reserved; nothing was written and the file's length is as before.
    fn prepare(
        &mut self,
        file: &Arc<File>,
        tail: u64,
        from: u64,
        to: u64,
        durability: Durability,
    ) -> io::Result<bool> {
        assert!(tail <= from && from <= to, "writes go above the tail");
        self.floor = tail;
        // A reservation ending below the tail is stale (the file was
        // extended by `pwrite` meanwhile): learn the file's length again, so
        // giving back blocks of a failed `fallocate` never cuts below it.
        if self.reserved_end_of(file).is_none_or(|end| end < tail) {
            self.forget();
            self.reserved_end = file.metadata()?.len().max(tail);
            self.file = Some(Arc::clone(file));
            self.unsupported = false;
        }
        if self.unsupported {
            return Ok(false);
        }
        if to > self.reserved_end {
            self.window = None;
            if !self.reserve(file, to, durability)? {
                return Ok(false);
            }
        }
        if let Some(window) = &self.window {
            let end = self.window_start + window.len() as u64;
            if self.window_start <= from && to <= end {
                if to > self.populated_end {
                    self.populate(to, durability);
                }
                return Ok(true);
            }
        }
        self.window = None;
        let start = from - from % ALIGN;
        let len = usize::try_from(self.reserved_end - start).map_err(io::Error::other)?;
        // The map covers only bytes the file holds (`..reserved_end`).
        match MmapOptions::new().offset(start).len(len).map_raw(&**file) {
            Ok(window) => {
                self.window = Some(window);
                self.window_start = start;
                self.populated_end = start;
                self.populate(to, durability);
                Ok(true)
            }
            Err(e) => {
                warn!(error = %e, "could not map the reservation for writing; writing with pwrite");
                Ok(false)
            }
        }
    }

    /// Allocates file space up to at least `to`, a step ahead when it can.
    /// `Ok(false)`: the filesystem cannot preallocate.
    fn reserve(&mut self, file: &File, to: u64, durability: Durability) -> io::Result<bool> {
        let from = self.reserved_end;
        let ahead = round_up(to.saturating_add(reservation_step(from, durability)), ALIGN);
        match allocate(file, from, ahead) {
            Ok(()) => {
                self.reserved_end = ahead;
                return Ok(true);
            }
            Err(e) if e == Errno::OPNOTSUPP || e == Errno::NOSYS => {
                debug!("the filesystem cannot preallocate; writing with pwrite");
                self.unsupported = true;
                return Ok(false);
            }
            Err(_) => {}
        }
        // No room for the step ahead: perhaps for this write alone.
        self.undo(file)?;
        match allocate(file, from, to) {
            Ok(()) => {
                self.reserved_end = to;
                Ok(true)
            }
            Err(e) => {
                self.undo(file)?;
                Err(e.into())
            }
        }
    }

    /// Faults in the window up to `to` and a step beyond with one call
    /// instead of one page fault per page (Linux 5.14 and later; elsewhere
    /// pages fault in as they are written). Not under `Durability::Sync`,
    /// where every page made dirty ahead would be written by the next sync.
    fn populate(&mut self, to: u64, durability: Durability) {
        let Some(window) = &self.window else {
            return;
        };
        let end = self.window_start + window.len() as u64;
        if durability == Durability::Sync {
            self.populated_end = end;
            return;
        }
        let from = self.populated_end;
        let upto = round_up(to.saturating_add(POPULATE_STEP), ALIGN).min(end);
        self.populated_end = upto;
        if upto > from {
            let offset = (from - self.window_start) as usize;
            let _ = window.advise_range(
                memmap2::Advice::PopulateWrite,
                offset,
                (upto - from) as usize,
            );
        }
    }

    /// Gives back blocks a failed `fallocate` may have left past the reservation.
    fn undo(&self, file: &File) -> io::Result<()> {
        if file_len(file)? > self.reserved_end {
            file.set_len(self.reserved_end)?;
        }
        Ok(())
    }

    /// The mapped bytes `from..to`, prepared by [`WriteMap::prepare`].
    fn slice(&mut self, from: u64, to: u64) -> &mut [u8] {
        let window = self.window.as_ref().expect("prepared before use");
        let end = self.window_start + window.len() as u64;
        assert!(self.floor.max(self.window_start) <= from && from <= to && to <= end);
        // SAFETY: `from..to` lies inside the writable map (checked above),
        // whose bytes all exist in the file: they were allocated before
        // being mapped, and the file is never shortened while the map exists
        // (see `forget`). They lie at or above the tail given to `prepare`
        // (`floor`, checked above), so no reader can reach them until the
        // writer publishes them, and `&mut self` rules out a second slice.
        unsafe {
            std::slice::from_raw_parts_mut(
                window.as_mut_ptr().add((from - self.window_start) as usize),
                (to - from) as usize,
            )
        }
    }
}

fn file_len(file: &File) -> io::Result<u64> {
    Ok(file.metadata()?.len())
}

/// `fallocate` of `from..to` (mode 0: the file grows to `to`).
fn allocate(file: &File, from: u64, to: u64) -> std::result::Result<(), Errno> {
    if to <= from {
        return Ok(());
    }
    loop {
        match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), from, to - from) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

impl State {
    /// Records that `pwrite` wrote the file up to `end` (the batch path, a
    /// streamed value): a reservation, if one is held, now ends at least
    /// there, so the writer's idea of the file's length stays right.
    pub(crate) fn wrote_through_file(&mut self, end: u64) {
        let State { file, wmap, .. } = self;
        wmap.wrote_through_file(file, end);
    }
}

impl DataStore {
    /// Writes the entries encoded in `appender` at its start (the tail, or
    /// after the chunks of the same batch written before it; `prev_end` is
    /// the tail before the batch): through the writable map when it can,
    /// else with `pwrite`. On error nothing of the batch is in the file: a
    /// reservation that cannot be had fails before any byte of this chunk
    /// is stored (and keeps what was reserved before, unless earlier chunks
    /// must be cut back); a failed `pwrite` is cut back to `prev_end`.
    pub(crate) fn append_encoded(
        &self,
        state: &mut State,
        appender: &Appender<'_>,
        prev_end: u64,
    ) -> Result<()> {
        // A chunk of a batch starts after the chunks before it (written,
        // not yet published), at or above the tail.
        let (tail, from, to) = (state.tail, appender.start(), appender.end());
        if to - from <= MAX_MAPPED_APPEND {
            // Disjoint fields: no reference count is touched per write.
            let State { file, wmap, .. } = &mut *state;
            match wmap.prepare(file, tail, from, to, self.options.durability) {
                Ok(true) => {
                    appender.copy_into(wmap.slice(from, to));
                    return Ok(());
                }
                Ok(false) => {}
                Err(e) => {
                    let e = io_err(&self.path, "reserving space in", e);
                    if from > tail {
                        // Earlier chunks of this batch are in the file.
                        return Err(self.roll_back(state, prev_end, e));
                    }
                    return Err(e);
                }
            }
        }
        if let Err(e) = appender.write_to(&state.file) {
            let e = io_err(&self.path, "appending to", e);
            return Err(self.roll_back(state, prev_end, e));
        }
        let State { file, wmap, .. } = &mut *state;
        wmap.wrote_through_file(file, to);
        Ok(())
    }

    /// Gives the unused reservation back (`ftruncate` to the tail), so a
    /// cleanly closed store ends with its last entry.
    pub(crate) fn trim_reservation(&self, state: &mut State) {
        let Some(reserved_end) = state.wmap.reserved_end_of(&state.file) else {
            return;
        };
        state.wmap.forget();
        if reserved_end <= state.tail {
            return;
        }
        if let Err(e) = state.file.set_len(state.tail) {
            // Harmless: the next open skips the zeros and cuts them.
            warn!(path = %self.path.display(), error = %e, "could not trim the space reserved for writes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn reservation_steps_are_bounded() {
        assert_eq!(reservation_step(0, Durability::Flush), MIN_STEP);
        assert_eq!(reservation_step(80 << 20, Durability::Flush), 10 << 20);
        assert_eq!(reservation_step(1 << 40, Durability::Flush), MAX_STEP);
        assert_eq!(reservation_step(0, Durability::None), BULK_MIN_STEP);
        assert_eq!(reservation_step(1 << 40, Durability::None), MAX_STEP);
    }

    #[test]
    fn a_reservation_is_zero_filled_space_mapped_for_writing() {
        let file = Arc::new(tempfile::tempfile().expect("temp file"));
        file.set_len(100).expect("len");
        let mut map = WriteMap::default();
        assert!(
            map.prepare(&file, 100, 100, 200, Durability::Flush)
                .expect("prepare")
        );
        let len = file_len(&file).expect("len");
        assert!(len >= 200 + MIN_STEP, "reserved a step ahead: {len}");
        map.slice(150, 160).copy_from_slice(b"0123456789");
        let mut back = [0u8; 12];
        file.read_exact_at(&mut back, 149).expect("read");
        assert_eq!(&back, b"\x000123456789\x00");
        map.forget();
        assert!(map.reserved_end_of(&file).is_none());
    }
}
