//! A small seeded generator (SplitMix64): reproducible, no dependency.

/// Deterministic pseudo-random numbers from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator that always yields the same sequence for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// `len` pseudo-random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// The value a test stores under `key`: its length and bytes follow from the
/// key alone, so a checker can tell whether any value it finds is intact.
/// Lengths span empty values, sub-cache-line values, several pages and
/// (one key in 16) values above the writer's 16 KiB copy threshold.
pub fn value_for(key: &[u8]) -> Vec<u8> {
    let mut seed = 0xcbf2_9ce4_8422_2325u64;
    for &b in key {
        seed = (seed ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut rng = Rng::new(seed);
    let len = match rng.below(16) {
        0 => 0,
        1 => 1,
        2..=9 => rng.range(2, 300),
        10..=14 => rng.range(301, 5000),
        _ => rng.range(16 * 1024, 40 * 1024),
    };
    rng.bytes(len as usize)
}
