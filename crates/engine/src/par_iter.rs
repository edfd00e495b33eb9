//! Parallel iteration over live entries as a rayon iterator.
//!
//! [`ParEntryIter`] drives rayon through an [`UnindexedProducer`] over one
//! snapshot of the live entry ends (see `order.rs`): a piece is a range of
//! 64-byte blocks of the file (or of the sorted list of ends, for sparse
//! files), split in halves as rayon's work stealing asks, so every thread
//! walks a contiguous stretch of the file and nothing is copied up front.
//! Each piece makes its handles on a [`ScopedLease`] of the thread running
//! it, so threads bump no shared reference count per entry.

use std::ops::Range;
use std::sync::Arc;

use mmblob_entry::{EntryHandle, Mapping, ScopedLease};
use rayon::iter::ParallelIterator;
use rayon::iter::plumbing::{Folder, UnindexedConsumer, UnindexedProducer, bridge_unindexed};

use crate::iter::{PREFETCH_BYTES, prefetch_tail};
use crate::order::{Ends, LiveEnds};

/// Smallest piece of a block table worth its own task: 4,096 blocks
/// (256 KiB of file).
const MIN_BLOCKS: usize = 1 << 12;
/// Smallest piece of a sorted list of ends worth its own task.
const MIN_ENDS: usize = 1 << 10;
/// Entries walked between checks whether the consumer wants more.
const FULL_CHECK_EVERY: usize = 64;

/// Parallel iterator over live entries; see
/// [`DataStore::par_iter_entries`](crate::DataStore::par_iter_entries).
pub struct ParEntryIter {
    map: Arc<Mapping>,
    ends: LiveEnds,
}

impl std::fmt::Debug for ParEntryIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParEntryIter")
            .field("entries", &self.ends.len())
            .finish_non_exhaustive()
    }
}

impl ParEntryIter {
    pub(crate) fn new(map: Arc<Mapping>, ends: LiveEnds) -> ParEntryIter {
        ParEntryIter { map, ends }
    }

    /// How many entries the iterator yields.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when it yields nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ParallelIterator for ParEntryIter {
    type Item = EntryHandle;

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        let units = match &self.ends {
            LiveEnds::Blocks { within, .. } => within.len(),
            LiveEnds::Sorted(ends) => ends.len(),
        };
        let piece = Piece {
            map: &self.map,
            ends: &self.ends,
            units: 0..units,
        };
        bridge_unindexed(piece, consumer)
    }

    fn opt_len(&self) -> Option<usize> {
        None
    }
}

/// A contiguous stretch of the snapshot: blocks `units` of the block
/// table, or ends `units` of the sorted list.
struct Piece<'a> {
    map: &'a Arc<Mapping>,
    ends: &'a LiveEnds,
    units: Range<usize>,
}

impl<'a> Piece<'a> {
    fn min_units(&self) -> usize {
        match self.ends {
            LiveEnds::Blocks { .. } => MIN_BLOCKS,
            LiveEnds::Sorted(_) => MIN_ENDS,
        }
    }

    /// The ends of this piece, in file order.
    fn ends(&self) -> Ends<'a> {
        let units = self.units.clone();
        match self.ends {
            LiveEnds::Blocks { within, .. } => Ends::Blocks {
                within: &within[units.clone()],
                first_block: units.start,
                next: 0,
            },
            LiveEnds::Sorted(ends) => Ends::Sorted(ends[units].iter()),
        }
    }
}

impl UnindexedProducer for Piece<'_> {
    type Item = EntryHandle;

    fn split(self) -> (Self, Option<Self>) {
        let len = self.units.len();
        if len < 2 * self.min_units() {
            return (self, None);
        }
        let mid = self.units.start + len / 2;
        let right = Piece {
            map: self.map,
            ends: self.ends,
            units: mid..self.units.end,
        };
        let left = Piece {
            units: self.units.start..mid,
            ..self
        };
        (left, Some(right))
    }

    fn fold_with<F>(self, mut folder: F) -> F
    where
        F: Folder<Self::Item>,
    {
        // Made and merged on this thread: the piece's handles count locally.
        let lease = ScopedLease::new(self.map);
        let bytes = self.map.readable();
        for (i, end) in self.ends().enumerate() {
            if i % FULL_CHECK_EVERY == 0 && folder.full() {
                break;
            }
            prefetch_tail(bytes, end + PREFETCH_BYTES);
            // Indexed ends point at entries checked when they were indexed.
            if let Ok(handle) = EntryHandle::at_leased(&lease, end) {
                folder = folder.consume(handle);
            }
        }
        folder
    }
}
