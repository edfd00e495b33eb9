//! Deterministic keys, values, read orders and a generated `Read` source.

use std::io::{self, Read};

/// Seed of every generated sequence, so each engine sees the same bytes.
pub const SEED: u64 = 0x6d6d_626c_6f62_2024;

/// Length of a key in bytes.
pub const KEY_LEN: usize = 16;

/// One step of splitmix64.
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `i`-th key: 16 pseudo-random bytes, unique for all practical purposes.
pub fn key(i: usize) -> [u8; KEY_LEN] {
    let mut state = SEED ^ (i as u64).wrapping_mul(0xa076_1d64_78bd_642f);
    let mut out = [0u8; KEY_LEN];
    out[..8].copy_from_slice(&splitmix(&mut state).to_le_bytes());
    out[8..].copy_from_slice(&splitmix(&mut state).to_le_bytes());
    out
}

/// Keys `0..n`.
pub fn keys(n: usize) -> Vec<[u8; KEY_LEN]> {
    (0..n).map(key).collect()
}

/// `len` pseudo-random bytes from `seed`.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&splitmix(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A buffer of random bytes that values are cut from.
pub struct Pool {
    bytes: Vec<u8>,
    max_len: usize,
}

impl Pool {
    /// A pool that can hand out values of up to `max_len` bytes.
    pub fn new(max_len: usize) -> Pool {
        let spread = 8 << 20;
        Pool {
            bytes: random_bytes(spread + max_len, SEED ^ 0x55),
            max_len,
        }
    }

    /// The value of entry `i`: `len` bytes from a pseudo-random place in the pool.
    pub fn value(&self, i: usize, len: usize) -> &[u8] {
        assert!(len <= self.max_len, "value longer than the pool allows");
        let mut state = SEED ^ (i as u64) ^ 0xabcd;
        let spread = self.bytes.len() - self.max_len;
        let start = (splitmix(&mut state) as usize) % spread;
        &self.bytes[start..start + len]
    }
}

/// A pseudo-random permutation of `0..n` (Fisher–Yates).
pub fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        let j = (splitmix(&mut state) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// Reads every byte of `bytes` and folds them into a number, so the
/// compiler cannot skip the reads.
pub fn touch(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    let mut acc = 0u64;
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        acc = acc.wrapping_add(u64::from_le_bytes(word));
    }
    for &b in chunks.remainder() {
        acc = acc.wrapping_add(u64::from(b));
    }
    acc
}

/// A `Read` producing `len` pseudo-random bytes chunk by chunk, holding only
/// one chunk's worth of source bytes, never the whole value.
pub struct GenReader {
    block: Vec<u8>,
    remaining: u64,
    state: u64,
}

/// Largest piece one `read` call of [`GenReader`] returns.
pub const GEN_CHUNK: usize = 1 << 20;

impl GenReader {
    /// A reader of `len` bytes.
    pub fn new(len: u64) -> GenReader {
        GenReader {
            block: random_bytes(GEN_CHUNK + 4096, SEED ^ 0x77),
            remaining: len,
            state: SEED,
        }
    }
}

impl Read for GenReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(GEN_CHUNK).min(self.remaining as usize);
        if n == 0 {
            return Ok(0);
        }
        let start = (splitmix(&mut self.state) % 4096) as usize;
        buf[..n].copy_from_slice(&self.block[start..start + n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Reads `src` to its end through `buf`, touching every byte.
/// Returns (bytes read, fold of the bytes).
pub fn drain(src: &mut dyn Read, buf: &mut [u8]) -> io::Result<(u64, u64)> {
    let mut total = 0u64;
    let mut acc = 0u64;
    loop {
        let n = match src.read(buf) {
            Ok(0) => return Ok((total, acc)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        acc = acc.wrapping_add(touch(&buf[..n]));
    }
}
