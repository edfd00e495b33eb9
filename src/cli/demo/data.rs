//! Generated keys and values for the demo: deterministic, cheap, checkable.

use std::io::{self, Read};

/// `demo/small/` followed by eight decimal digits.
pub const KEY_LEN: usize = 19;
const KEY_PREFIX: &[u8; 11] = b"demo/small/";

/// The key of small entry `i` (`i < 10^8`).
pub fn small_key(i: u64) -> [u8; KEY_LEN] {
    let mut key = [b'0'; KEY_LEN];
    key[..KEY_PREFIX.len()].copy_from_slice(KEY_PREFIX);
    let mut rest = i;
    for digit in key[KEY_PREFIX.len()..].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    key
}

/// The `i` of a key made by [`small_key`], or `None` for other keys.
pub fn small_index(key: &[u8]) -> Option<u64> {
    let digits = key.strip_prefix(KEY_PREFIX.as_slice())?;
    if digits.len() != KEY_LEN - KEY_PREFIX.len() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Appends the value of small entry `i` in `generation` (0 when first
/// written, 1 after an overwrite) to `out`: 16 to 128 bytes that start with
/// [`tag`] and repeat its low byte.
pub fn push_small_value(out: &mut Vec<u8>, i: u64, generation: u64) {
    let len = 16 + (i.wrapping_mul(7919) % 113) as usize;
    let tag = tag(i, generation);
    out.extend_from_slice(&tag.to_le_bytes());
    out.resize(out.len() + len - 8, tag as u8);
}

/// The first eight bytes (little-endian) of a small value.
pub fn tag(i: u64, generation: u64) -> u64 {
    i | (generation << 56)
}

/// Reads the tag back from a small value.
pub fn read_tag(value: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(value.get(..8)?.try_into().ok()?))
}

/// A small, fast pseudo-random generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A `Read` that produces `len` pseudo-random bytes (little-endian `u64`
/// words) without ever holding more than the caller's buffer, and keeps a
/// wrapping sum of the words it produced.
#[derive(Debug)]
pub struct GeneratedValue {
    remaining: u64,
    rng: Rng,
    sum: u64,
    /// The word being handed out a few bytes at a time, and how much of it is used.
    word: [u8; 8],
    used: usize,
}

impl GeneratedValue {
    /// A value of `len` bytes, rounded down to whole words.
    pub fn new(len: u64, seed: u64) -> Self {
        GeneratedValue {
            remaining: len - len % 8,
            rng: Rng::new(seed),
            sum: 0,
            word: [0; 8],
            used: 8,
        }
    }

    /// Wrapping sum of the words produced so far.
    pub fn sum(&self) -> u64 {
        self.sum
    }

    fn next_word(&mut self) -> [u8; 8] {
        let word = self.rng.next_u64();
        self.sum = self.sum.wrapping_add(word);
        word.to_le_bytes()
    }

    /// Hands out bytes of the current word (starting a new one if `start`).
    fn partial(&mut self, out: &mut [u8], start: bool) -> usize {
        if start {
            self.word = self.next_word();
            self.used = 0;
        }
        let n = out.len().min(8 - self.used);
        out[..n].copy_from_slice(&self.word[self.used..self.used + n]);
        self.used += n;
        n
    }
}

impl Read for GeneratedValue {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let mut filled = self.partial(&mut buf[..n], false);
        let whole = (n - filled) / 8;
        for chunk in buf[filled..filled + whole * 8].chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.next_word());
        }
        filled += whole * 8;
        if filled < n {
            filled += self.partial(&mut buf[filled..n], true);
        }
        self.remaining -= filled as u64;
        Ok(filled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_width() {
        assert_eq!(&small_key(42), b"demo/small/00000042");
        assert_eq!(&small_key(99_999_999), b"demo/small/99999999");
    }

    #[test]
    fn small_keys_parse_back() {
        assert_eq!(small_index(&small_key(1234)), Some(1234));
        assert_eq!(small_index(b"demo/large"), None);
        assert_eq!(small_index(b"demo/small/0000000x"), None);
    }

    #[test]
    fn values_carry_their_tag() {
        let mut value = Vec::new();
        push_small_value(&mut value, 7, 1);
        assert!((16..=128).contains(&value.len()));
        assert_eq!(read_tag(&value), Some(tag(7, 1)));
    }

    #[test]
    fn generated_value_has_the_asked_length_and_sum() {
        let mut value = GeneratedValue::new(1000, 3);
        let mut bytes = Vec::new();
        let mut small = [0u8; 3];
        let n = value.read(&mut small).unwrap_or(0);
        bytes.extend_from_slice(&small[..n]);
        value.read_to_end(&mut bytes).ok();
        assert_eq!(bytes.len(), 1000);
        let sum = bytes
            .chunks_exact(8)
            .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes))
            .fold(0u64, u64::wrapping_add);
        assert_eq!(sum, value.sum());
    }
}
