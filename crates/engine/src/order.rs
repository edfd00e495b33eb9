//! Putting entry ends into file order, for scans.
//!
//! Two entries never end in the same 64-byte block of the file: an entry is
//! at least 33 bytes long (trailer and a key byte) and the next one starts
//! on the next 64-byte boundary. So when the file is dense in entries, a
//! byte per block — the end's offset within its block — is a perfect bucket
//! sort: one scatter into a table of `file_len / 64` bytes and one sweep
//! over it. Sparse files (large values) fall back to a radix sort.

use mmblob_entry::format::ALIGNMENT;

/// Block-table bytes allowed per offset before the radix sort is cheaper.
const MAX_BLOCKS_PER_OFFSET: u64 = 16;

/// Sorts entry end offsets (all non-zero) ascending.
pub(crate) fn sort_ends(ends: &mut Vec<u64>) {
    if ends.len() < 1 << 12 {
        ends.sort_unstable();
        return;
    }
    let Some(&max) = ends.iter().max() else {
        return;
    };
    let dense = max / ALIGNMENT <= MAX_BLOCKS_PER_OFFSET * ends.len() as u64;
    if !(dense && sort_by_block(ends, max)) {
        radix_sort(ends);
    }
}

/// The bucket sort described in the module docs. Returns `false`, leaving
/// `ends` untouched, if two ends share a block (impossible for real entries,
/// but the caller must not lose one if an index is ever inconsistent).
fn sort_by_block(ends: &mut [u64], max: u64) -> bool {
    let block_of = |end: u64| ((end - 1) / ALIGNMENT) as usize;
    // Each byte holds 1..=64: where in its block an end falls; 0 is none.
    // Stores only, no load per end: the misses overlap. Two ends in one
    // block would show up as fewer filled bytes than ends.
    let mut within = vec![0u8; block_of(max) + 1];
    for &end in ends.iter() {
        within[block_of(end)] = ((end - 1) % ALIGNMENT + 1) as u8;
    }
    if within.iter().filter(|&&b| b != 0).count() != ends.len() {
        return false;
    }
    let mut out = 0;
    for (word_index, word) in within.chunks(8).enumerate() {
        let mut bytes = [0u8; 8];
        bytes[..word.len()].copy_from_slice(word);
        let mut rest = u64::from_le_bytes(bytes);
        while rest != 0 {
            let byte = rest.trailing_zeros() / 8;
            let block = (word_index * 8) as u64 + u64::from(byte);
            ends[out] = block * ALIGNMENT + (rest >> (byte * 8) & 0xff);
            out += 1;
            rest &= !(0xff << (byte * 8));
        }
    }
    true
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

    fn assert_sorts(mut values: Vec<u64>, label: &str) {
        let mut expected = values.clone();
        expected.sort_unstable();
        sort_ends(&mut values);
        assert_eq!(values, expected, "{label}");
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
        assert_sorts(ends, "dense");
    }

    #[test]
    fn ends_sharing_a_block_fall_back_without_loss() {
        let mut ends: Vec<u64> = (1..=10_000u64).rev().map(|i| i * 64).collect();
        ends.push(64 * 5_000 - 10);
        assert_sorts(ends, "shared block");
    }
}
