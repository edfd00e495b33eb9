//! Putting live entry ends into file order, for scans.
//!
//! Two entries never end in the same 64-byte block of the file: an entry is
//! at least 33 bytes long (trailer and a key byte) and the next one starts
//! on the next 64-byte boundary. So when the file is dense in entries, a
//! byte per block — the end's offset within its block — is a perfect bucket
//! sort: one scatter into a table of `file_len / 64` bytes, and scans sweep
//! that table directly, in order. Sparse files (large values) use a sorted
//! list of ends instead.

use std::sync::atomic::{AtomicU8, Ordering};

use mmblob_entry::format::ALIGNMENT;

/// Block-table bytes allowed per end before a sorted list is cheaper.
const MAX_BLOCKS_PER_END: u64 = 16;
/// Blocks per piece when a scan is split between threads.
#[cfg(feature = "parallel")]
const BLOCKS_PER_PIECE: usize = 1 << 15;
/// Ends per piece when a sorted list is split between threads.
#[cfg(feature = "parallel")]
const ENDS_PER_PIECE: usize = 4096;

/// The live entry ends of one index snapshot, in file order.
pub(crate) enum LiveEnds {
    /// Byte `b` is where in 64-byte block `b` an entry ends (1..=64), or 0.
    Blocks { within: Vec<u8>, count: usize },
    /// The ends, sorted.
    Sorted(Vec<u64>),
}

impl LiveEnds {
    /// `ends`, sorted.
    pub(crate) fn sorted(mut ends: Vec<u64>) -> LiveEnds {
        if ends.len() < 1 << 12 {
            ends.sort_unstable();
        } else {
            radix_sort(&mut ends);
        }
        LiveEnds::Sorted(ends)
    }

    /// True when `count` ends below `limit` are best kept in a block table.
    pub(crate) fn dense(limit: u64, count: usize) -> bool {
        count >= 1 << 12 && limit / ALIGNMENT <= MAX_BLOCKS_PER_END * count as u64
    }

    /// A block table filled by `fill`, which gets a [`BlockSink`] for ends
    /// up to `limit` (its callers may run on several threads) and returns
    /// how many ends it recorded; `None` if `fill` fails or two ends shared
    /// a block.
    pub(crate) fn from_blocks(
        limit: u64,
        fill: impl FnOnce(&BlockSink) -> Option<usize>,
    ) -> Option<LiveEnds> {
        let sink = BlockSink {
            within: (0..=limit / ALIGNMENT).map(|_| AtomicU8::new(0)).collect(),
            limit,
        };
        let count = fill(&sink)?;
        let within: Vec<u8> = sink.within.into_iter().map(AtomicU8::into_inner).collect();
        let filled = within.iter().filter(|&&b| b != 0).count();
        (filled == count).then_some(LiveEnds::Blocks { within, count })
    }

    /// How many ends there are.
    pub(crate) fn len(&self) -> usize {
        match self {
            LiveEnds::Blocks { count, .. } => *count,
            LiveEnds::Sorted(ends) => ends.len(),
        }
    }

    /// The ends, in order.
    pub(crate) fn iter(&self) -> Ends<'_> {
        match self {
            LiveEnds::Blocks { within, .. } => Ends::blocks(within, 0),
            LiveEnds::Sorted(ends) => Ends::Sorted(ends.iter()),
        }
    }

    /// The ends in consecutive pieces (each in order) for threads to share.
    #[cfg(feature = "parallel")]
    pub(crate) fn par_pieces(&self) -> impl rayon::iter::IndexedParallelIterator<Item = Ends<'_>> {
        use rayon::prelude::*;
        let (within, ends): (&[u8], &[u64]) = match self {
            LiveEnds::Blocks { within, .. } => (within, &[]),
            LiveEnds::Sorted(ends) => (&[], ends),
        };
        let blocks = within
            .par_chunks(BLOCKS_PER_PIECE)
            .enumerate()
            .map(|(i, piece)| Ends::blocks(piece, i * BLOCKS_PER_PIECE));
        let sorted = ends
            .par_chunks(ENDS_PER_PIECE)
            .map(|piece| Ends::Sorted(piece.iter()));
        blocks.chain(sorted)
    }
}

/// Where threads record entry ends for [`LiveEnds::from_blocks`]: one
/// byte per block, each written by whoever owns that end (relaxed stores
/// are plain byte stores).
pub(crate) struct BlockSink {
    within: Vec<AtomicU8>,
    limit: u64,
}

impl BlockSink {
    /// Records `end`; `false` if it is past the limit.
    pub(crate) fn record(&self, end: u64) -> bool {
        if end == 0 || end > self.limit {
            return false;
        }
        let block = ((end - 1) / ALIGNMENT) as usize;
        self.within[block].store(((end - 1) % ALIGNMENT + 1) as u8, Ordering::Relaxed);
        true
    }
}

/// An iterator over (part of) a [`LiveEnds`], in file order.
pub(crate) enum Ends<'a> {
    Blocks {
        within: &'a [u8],
        /// Block number of `within[0]`.
        first_block: usize,
        next: usize,
    },
    Sorted(std::slice::Iter<'a, u64>),
}

impl<'a> Ends<'a> {
    fn blocks(within: &'a [u8], first_block: usize) -> Self {
        Ends::Blocks {
            within,
            first_block,
            next: 0,
        }
    }
}

impl Iterator for Ends<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        match self {
            Ends::Sorted(ends) => ends.next().copied(),
            Ends::Blocks {
                within,
                first_block,
                next,
            } => next_in_blocks(within, next).map(|end| end + (*first_block as u64) * ALIGNMENT),
        }
    }
}

impl LiveEnds {
    /// The end at `cursor` (0 to start), moving `cursor` past it: for an
    /// owner of the ends that cannot hold a borrowing [`Ends`].
    pub(crate) fn next_at(&self, cursor: &mut usize) -> Option<u64> {
        match self {
            LiveEnds::Blocks { within, .. } => next_in_blocks(within, cursor),
            LiveEnds::Sorted(ends) => {
                let end = ends.get(*cursor).copied();
                *cursor += usize::from(end.is_some());
                end
            }
        }
    }
}

/// The first entry end recorded at or after block `*next` of `within`, as
/// an offset from the start of `within`'s first block; moves `*next` past it.
fn next_in_blocks(within: &[u8], next: &mut usize) -> Option<u64> {
    while let Some(&byte) = within.get(*next) {
        // Skip eight empty blocks at once.
        if byte == 0
            && let Some(word) = within.get(*next..*next + 8)
            && word == [0; 8]
        {
            *next += 8;
            continue;
        }
        *next += 1;
        if byte != 0 {
            return Some((*next as u64 - 1) * ALIGNMENT + u64::from(byte));
        }
    }
    None
}

/// LSD radix sort on 11-bit digits (three passes for files under 8 GiB).
/// 2,048 counters stay in L1 cache, so each pass streams; wider digits
/// scatter across too many buckets.
fn radix_sort(offsets: &mut Vec<u64>) {
    const DIGIT_BITS: u32 = 11;
    const MASK: u64 = (1 << DIGIT_BITS) - 1;
    let bits = 64 - offsets.iter().max().map_or(0, |m| m.leading_zeros());
    let mut scratch = vec![0u64; offsets.len()];
    let mut counts = [0usize; 1 << DIGIT_BITS];
    let mut shift = 0;
    while shift < bits {
        counts.fill(0);
        for &x in offsets.iter() {
            counts[((x >> shift) & MASK) as usize] += 1;
        }
        let mut next = 0;
        for count in &mut counts {
            next += std::mem::replace(count, next);
        }
        for &x in offsets.iter() {
            let digit = ((x >> shift) & MASK) as usize;
            scratch[counts[digit]] = x;
            counts[digit] += 1;
        }
        std::mem::swap(offsets, &mut scratch);
        shift += DIGIT_BITS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// Orders `values` the way the index does: a block table when dense
    /// and consistent, else a sorted list.
    fn order(values: Vec<u64>) -> LiveEnds {
        let max = values.iter().max().copied().unwrap_or(0);
        let blocks = LiveEnds::dense(max, values.len())
            .then(|| {
                LiveEnds::from_blocks(max, |sink| {
                    values
                        .iter()
                        .all(|&end| sink.record(end))
                        .then_some(values.len())
                })
            })
            .flatten();
        blocks.unwrap_or_else(|| LiveEnds::sorted(values))
    }

    fn assert_sorts(values: Vec<u64>, label: &str) {
        let mut expected = values.clone();
        expected.sort_unstable();
        let ordered = order(values);
        assert_eq!(ordered.len(), expected.len(), "{label}");
        assert_eq!(ordered.iter().collect::<Vec<u64>>(), expected, "{label}");
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            let pieces: Vec<Vec<u64>> = ordered.par_pieces().map(Iterator::collect).collect();
            assert_eq!(pieces.concat(), expected, "{label}, in pieces");
        }
    }

    #[test]
    fn sparse_offsets_sort_like_std() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in [0usize, 1, 5, 4095, 4096, 70_000] {
            let values = (0..len)
                .map(|_| {
                    let x = xorshift(&mut seed);
                    (x >> (x % 40)).max(1)
                })
                .collect();
            assert_sorts(values, &format!("sparse, len {len}"));
        }
    }

    #[test]
    fn dense_entry_ends_sort_like_std() {
        // Entries of 33..=300 bytes laid out as in a store file.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut start = 64;
        let mut ends = Vec::new();
        for _ in 0..50_000 {
            let end = start + 33 + xorshift(&mut seed) % 268;
            ends.push(end);
            start = end.next_multiple_of(ALIGNMENT);
        }
        for i in (1..ends.len()).rev() {
            let j = (xorshift(&mut seed) % (i as u64 + 1)) as usize;
            ends.swap(i, j);
        }
        assert!(matches!(order(ends.clone()), LiveEnds::Blocks { .. }));
        assert_sorts(ends, "dense");
    }

    #[test]
    fn ends_sharing_a_block_fall_back_without_loss() {
        let mut ends: Vec<u64> = (1..=10_000u64).rev().map(|i| i * 64).collect();
        ends.push(64 * 5_000 - 10);
        assert!(matches!(order(ends.clone()), LiveEnds::Sorted(_)));
        assert_sorts(ends, "shared block");
    }
}
