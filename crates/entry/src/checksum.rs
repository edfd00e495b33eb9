//! Key hashing and the store-seeded entry checksum.

use crate::format::Trailer;

/// The xxh3-64 hash of a key, as stored in trailers and used by the index.
#[must_use]
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// The CRC-32 initial value derived from a store id: both halves folded.
///
/// Seeding with the store id means a trailer copied from another store (for
/// example a store file kept as a value) never validates in this one.
#[must_use]
pub const fn crc_seed(store_id: u64) -> u32 {
    (store_id as u32) ^ ((store_id >> 32) as u32)
}

/// Incremental checksum of one entry: feed payload, then key, then finish
/// with the trailer.
#[derive(Clone)]
pub struct EntryCrc(crc32fast::Hasher);

impl EntryCrc {
    /// Starts a checksum for an entry of the store `store_id`.
    #[must_use]
    pub fn new(store_id: u64) -> Self {
        EntryCrc(crc32fast::Hasher::new_with_initial(crc_seed(store_id)))
    }

    /// Adds payload or key bytes, in file order.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The checksum of everything added, when the trailer's first 28
    /// bytes were added last (as part of the entry's bytes).
    #[must_use]
    pub fn finish(self) -> u32 {
        self.0.finalize()
    }

    /// Adds the first 28 bytes of `trailer` and returns the checksum.
    #[must_use]
    pub fn finish_with(mut self, trailer: &Trailer) -> u32 {
        self.0.update(&trailer.checked_prefix());
        self.0.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_changes_the_checksum() {
        let t = Trailer {
            prev_end: 64,
            key_hash: key_hash(b"k"),
            payload_len: 1,
            key_len: 1,
            flags: 0,
            crc: 0,
        };
        let a = t.compute_crc(1, b"v", b"k");
        let b = t.compute_crc(2, b"v", b"k");
        assert_ne!(a, b);
        assert_eq!(a, t.compute_crc(1, b"v", b"k"));
    }

    #[test]
    fn seed_folds_both_halves() {
        assert_eq!(crc_seed(0x0000_0001_0000_0000), 1);
        assert_eq!(crc_seed(0x0000_0001_0000_0001), 0);
    }
}
