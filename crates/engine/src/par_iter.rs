//! Parallel iteration over live entries as a rayon iterator.
//!
//! [`ParEntryIter`] drives rayon through an [`UnindexedProducer`] over one
//! snapshot of the live entry ends (see `order.rs`): a piece is a range of
//! 64-byte blocks of the file (or of the sorted list of ends, for sparse
//! files), split in halves as rayon's work stealing asks, so every thread
//! walks a contiguous stretch of the file and nothing is copied up front.
//! Each piece makes its handles on a [`ScopedLease`] of the thread running
//! it, so threads bump no shared reference count per entry.

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;

use mmblob_entry::{Entry, EntryHandle, Mapping, ScopedLease};
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
        bridge_unindexed(Piece::<Handles>::whole(&self.map, &self.ends), consumer)
    }

    fn opt_len(&self) -> Option<usize> {
        None
    }
}

/// Parallel iterator over the [`Entry`]s of a snapshot; see
/// [`Entries::par_iter`](crate::Entries::par_iter).
pub(crate) struct Borrowed<'a> {
    map: &'a Arc<Mapping>,
    ends: &'a LiveEnds,
}

impl<'a> Borrowed<'a> {
    pub(crate) fn new(map: &'a Arc<Mapping>, ends: &'a LiveEnds) -> Borrowed<'a> {
        Borrowed { map, ends }
    }
}

impl<'a> ParallelIterator for Borrowed<'a> {
    type Item = Entry<'a>;

    fn drive_unindexed<C>(self, consumer: C) -> C::Result
    where
        C: UnindexedConsumer<Self::Item>,
    {
        bridge_unindexed(Piece::<Lent>::whole(self.map, self.ends), consumer)
    }
}

/// What a piece yields for each entry end, and how it folds them.
trait Yield<'a>: Send {
    type Item: Send;

    /// Feeds the entries ending at `ends` to `folder`, stopping when it is full.
    fn fold<F: Folder<Self::Item>>(map: &'a Arc<Mapping>, ends: Ends<'a>, folder: F) -> F;
}

/// Pieces yield [`EntryHandle`]s counted on a lease of their thread.
struct Handles;

/// Pieces yield borrowed [`Entry`]s.
struct Lent;

impl<'a> Yield<'a> for Handles {
    type Item = EntryHandle;

    fn fold<F: Folder<EntryHandle>>(map: &'a Arc<Mapping>, ends: Ends<'a>, mut folder: F) -> F {
        // Made and merged on this thread: the piece's handles count locally.
        let lease = ScopedLease::new(map);
        let bytes = map.readable();
        for (i, end) in ends.enumerate() {
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

impl<'a> Yield<'a> for Lent {
    type Item = Entry<'a>;

    fn fold<F: Folder<Entry<'a>>>(map: &'a Arc<Mapping>, ends: Ends<'a>, mut folder: F) -> F {
        let bytes = map.readable();
        for (i, end) in ends.enumerate() {
            if i % FULL_CHECK_EVERY == 0 && folder.full() {
                break;
            }
            prefetch_tail(bytes, end + PREFETCH_BYTES);
            if let Ok(entry) = Entry::at(map, end) {
                folder = folder.consume(entry);
            }
        }
        folder
    }
}

/// A contiguous stretch of the snapshot: blocks `units` of the block
/// table, or ends `units` of the sorted list.
struct Piece<'a, Y> {
    map: &'a Arc<Mapping>,
    ends: &'a LiveEnds,
    units: Range<usize>,
    _yields: PhantomData<fn() -> Y>,
}

impl<'a, Y> Piece<'a, Y> {
    /// The whole snapshot.
    fn whole(map: &'a Arc<Mapping>, ends: &'a LiveEnds) -> Piece<'a, Y> {
        let units = match ends {
            LiveEnds::Blocks { within, .. } => within.len(),
            LiveEnds::Sorted(ends) => ends.len(),
        };
        Piece {
            map,
            ends,
            units: 0..units,
            _yields: PhantomData,
        }
    }

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

impl<'a, Y: Yield<'a>> UnindexedProducer for Piece<'a, Y> {
    type Item = Y::Item;

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
            _yields: PhantomData,
        };
        let left = Piece {
            units: self.units.start..mid,
            ..self
        };
        (left, Some(right))
    }

    fn fold_with<F>(self, folder: F) -> F
    where
        F: Folder<Self::Item>,
    {
        Y::fold(self.map, self.ends(), folder)
    }
}
