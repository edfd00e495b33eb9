//! Finding the end of a store and rebuilding its index from the trailer chain.
//!
//! Open reads backward: [`Ctx::find_tail`] looks for the last position at which a
//! fully valid entry ends (structure, key hash and checksum), cutting back
//! over a torn batch; [`walk`] then follows `prev_end` links from there to
//! the header, checking the structure and key hash of every entry. Where a
//! link leads to bytes that are not a trailer, the walk scans backward for
//! the previous fully valid entry and reports the skipped bytes as damage,
//! so one damaged entry never hides the entries before it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use mmblob_entry::checksum::EntryCrc;
use mmblob_entry::format::{EntryLayout, HEADER_LEN, MIN_ENTRY_END, TRAILER_LEN, Trailer};

use crate::damage::{Damage, DamageKind};

/// How keys are hashed; a seam so tests can force collisions.
pub(crate) type KeyHasher = fn(&[u8]) -> u64;

/// Candidate trailer positions examined per read while scanning backward.
const SCAN_WINDOW: usize = 64 * 1024;
/// Payload bytes read per call while checksumming through [`ReadAt`].
const CHECK_CHUNK: usize = 1 << 20;
/// Bytes read per call while skipping a zero-filled tail.
const ZERO_WINDOW: u64 = 1 << 20;

/// Where an entry can end at the latest, given the zero-filled tail of
/// `src` (`len` bytes, committed up to `lo`): a writer's reservation (see
/// the format docs) is skipped at memory speed instead of being searched
/// for trailers byte by byte. Every entry's trailer holds a non-zero key
/// length 8 bytes before the entry's end, so no entry ends more than 8
/// bytes after the last non-zero byte.
///
/// If `src` turns out shorter than `len` (a writer trimmed its reservation
/// meanwhile), the bytes no longer there are taken as zeros: trimming only
/// removes bytes past the last entry.
pub(crate) fn skip_zero_tail(src: &(impl ReadAt + ?Sized), len: u64, lo: u64) -> io::Result<u64> {
    if len <= lo {
        return Ok(len);
    }
    let mut buf = vec![0u8; ZERO_WINDOW.min(len - lo) as usize];
    let mut end = len;
    while end > lo {
        let start = end.saturating_sub(ZERO_WINDOW).max(lo);
        let window = &mut buf[..(end - start) as usize];
        match src.read_at(start, window) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                end = start + (end - start) / 2;
                continue;
            }
            Err(e) => return Err(e),
        }
        if let Some(at) = last_nonzero(window) {
            return Ok((start + at as u64 + 8).min(len));
        }
        end = start;
    }
    Ok(lo)
}

/// Index of the last non-zero byte, looking at 64 bytes at a time.
fn last_nonzero(bytes: &[u8]) -> Option<usize> {
    let whole = bytes.len() - bytes.len() % 64;
    if let Some(at) = bytes[whole..].iter().rposition(|&b| b != 0) {
        return Some(whole + at);
    }
    let block = bytes[..whole]
        .chunks_exact(64)
        .rposition(|chunk| chunk.iter().fold(0u8, |acc, &b| acc | b) != 0)?;
    let from = block * 64;
    bytes[from..from + 64]
        .iter()
        .rposition(|&b| b != 0)
        .map(|at| from + at)
}

/// Positional reads: the file (no SIGBUS if it shrinks) or bytes in memory.
pub(crate) trait ReadAt {
    /// Fills `buf` from `offset`; `UnexpectedEof` if the source is shorter.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// What recovery needs to know about the store.
#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    pub(crate) store_id: u64,
    pub(crate) hasher: KeyHasher,
}

/// An entry whose trailer agrees with its position.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    pub(crate) trailer: Trailer,
    pub(crate) layout: EntryLayout,
}

impl Found {
    pub(crate) fn end(&self) -> u64 {
        self.layout.end()
    }
}

/// The key of the entry ending at `end` within `bytes`, trusting its trailer.
pub(crate) fn key_in(bytes: &[u8], end: u64) -> Option<&[u8]> {
    let trailer_start = usize::try_from(end.checked_sub(TRAILER_LEN)?).ok()?;
    let trailer = bytes.get(trailer_start..trailer_start + TRAILER_LEN as usize)?;
    let key_len = usize::from(u16::from_le_bytes([trailer[24], trailer[25]]));
    bytes.get(trailer_start.checked_sub(key_len)?..trailer_start)
}

fn decode_at(bytes: &[u8], end: u64) -> Option<Trailer> {
    let start = usize::try_from(end.checked_sub(TRAILER_LEN)?).ok()?;
    let raw: &[u8; TRAILER_LEN as usize] = bytes
        .get(start..start + TRAILER_LEN as usize)?
        .try_into()
        .ok()?;
    Some(Trailer::decode(raw))
}

impl Ctx {
    /// The entry ending at `end` in `bytes` if its structure and key hash hold.
    pub(crate) fn structure(&self, bytes: &[u8], end: u64) -> Option<Found> {
        let trailer = decode_at(bytes, end)?;
        let layout = trailer.layout(end)?;
        let key = key_in(bytes, end)?;
        ((self.hasher)(key) == trailer.key_hash).then_some(Found { trailer, layout })
    }

    /// `(stored, computed)` checksums of a found entry read through `src`.
    pub(crate) fn checksums(
        &self,
        src: &(impl ReadAt + ?Sized),
        found: &Found,
    ) -> io::Result<(u32, u32)> {
        let mut crc = EntryCrc::new(self.store_id);
        let mut buf =
            vec![
                0u8;
                CHECK_CHUNK.min(usize::try_from(found.layout.payload_len).unwrap_or(CHECK_CHUNK))
            ];
        let mut pos = found.layout.payload_start;
        let payload_end = found.layout.key_start;
        while pos < payload_end {
            let n = buf
                .len()
                .min(usize::try_from(payload_end - pos).unwrap_or(usize::MAX));
            src.read_at(pos, &mut buf[..n])?;
            crc.update(&buf[..n]);
            pos += n as u64;
        }
        let mut key = vec![0u8; usize::from(found.layout.key_len)];
        src.read_at(found.layout.key_start, &mut key)?;
        crc.update(&key);
        Ok((found.trailer.crc, crc.finish_with(&found.trailer)))
    }

    /// The entry ending at `end` if it is fully valid: structure, key hash, checksum.
    pub(crate) fn valid_entry(
        &self,
        src: &(impl ReadAt + ?Sized),
        end: u64,
        raw: &[u8; 32],
    ) -> io::Result<Option<Found>> {
        let trailer = Trailer::decode(raw);
        let Some(layout) = trailer.layout(end) else {
            return Ok(None);
        };
        let mut key = vec![0u8; usize::from(layout.key_len)];
        match src.read_at(layout.key_start, &mut key) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            other => other?,
        }
        if (self.hasher)(&key) != trailer.key_hash {
            return Ok(None);
        }
        let found = Found { trailer, layout };
        let (stored, computed) = self.checksums(src, &found)?;
        Ok((stored == computed).then_some(found))
    }

    /// The last fully valid entry ending in `lo..=hi`, scanning backward.
    ///
    /// Costs O(hi - lo) cheap structure checks; only positions whose trailer
    /// agrees with its own position are checksummed.
    pub(crate) fn last_valid_entry(
        &self,
        src: &(impl ReadAt + ?Sized),
        hi: u64,
        lo: u64,
    ) -> io::Result<Option<Found>> {
        let lo = lo.max(MIN_ENTRY_END);
        if hi < lo {
            return Ok(None);
        }
        let mut buf = vec![0u8; SCAN_WINDOW];
        let mut window_end = hi;
        loop {
            let window_start = window_end
                .saturating_sub(SCAN_WINDOW as u64)
                .max(lo - TRAILER_LEN);
            let window = &mut buf[..(window_end - window_start) as usize];
            src.read_at(window_start, window)?;
            let mut end = window_end;
            while end >= lo && end >= window_start + TRAILER_LEN {
                let at = (end - TRAILER_LEN - window_start) as usize;
                let mut raw = [0u8; TRAILER_LEN as usize];
                raw.copy_from_slice(&window[at..at + TRAILER_LEN as usize]);
                if let Some(found) = self.valid_entry(src, end, &raw)? {
                    return Ok(Some(found));
                }
                end -= 1;
            }
            if window_start + TRAILER_LEN <= lo {
                return Ok(None);
            }
            window_end = window_start + TRAILER_LEN - 1;
        }
    }

    /// The committed end of the data in `src`, which is `len` bytes long and
    /// known to be committed up to `lo`: the end of the last valid entry that
    /// is not part of an unfinished batch.
    pub(crate) fn find_tail(
        &self,
        src: &(impl ReadAt + ?Sized),
        len: u64,
        lo: u64,
    ) -> io::Result<u64> {
        let len = skip_zero_tail(src, len, lo)?;
        let mut candidate = self.last_valid_entry(src, len, lo)?;
        while let Some(found) = candidate {
            if !found.trailer.batch_continues() {
                return Ok(found.end());
            }
            candidate = self.last_valid_entry(src, found.layout.prev_end, lo)?;
        }
        Ok(lo)
    }
}

/// What open found at the end of a store file.
#[derive(Debug)]
pub(crate) struct Tail {
    /// The committed end: bytes past it are an interrupted write.
    pub(crate) end: u64,
    /// Where the chain to index starts: below a damaged last batch, else `end`.
    pub(crate) chain_end: u64,
    /// The entries of a damaged last batch, newest first: kept in the file,
    /// hidden from the index.
    pub(crate) hidden: Vec<Found>,
    /// What is wrong with that batch.
    pub(crate) damage: Vec<Damage>,
}

impl Tail {
    fn clean(end: u64) -> Tail {
        Tail {
            end,
            chain_end: end,
            hidden: Vec::new(),
            damage: Vec::new(),
        }
    }
}

/// The trailer ending at `end` read through `src`, if its numbers agree
/// with that position.
pub(crate) fn consistent_at(src: &(impl ReadAt + ?Sized), end: u64) -> io::Result<Option<Found>> {
    if end < MIN_ENTRY_END {
        return Ok(None);
    }
    let mut raw = [0u8; TRAILER_LEN as usize];
    match src.read_at(end - TRAILER_LEN, &mut raw) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let trailer = Trailer::decode(&raw);
    Ok(trailer.layout(end).map(|layout| Found { trailer, layout }))
}

impl Ctx {
    /// The end of the committed data in `src` (`len` bytes, known to be
    /// committed up to `lo`), applying the tail rule:
    ///
    /// * The file ends in a structurally complete chain (the last trailer
    ///   agrees with its position, and so does the one its link points to,
    ///   and it does not say that more entries of its batch follow):
    ///   nothing is torn. If an entry of the last batch fails its checksum
    ///   (or its key disagrees with its key hash) that is damage: the bytes
    ///   stay, the whole batch is hidden and reported.
    /// * Otherwise the tail is an interrupted write: the end is the last
    ///   fully valid entry that does not leave a batch unfinished
    ///   ([`Ctx::find_tail`], O(entries + torn bytes)).
    pub(crate) fn recover_tail(
        &self,
        src: &(impl ReadAt + ?Sized),
        len: u64,
        lo: u64,
    ) -> io::Result<Tail> {
        let hi = skip_zero_tail(src, len, lo)?;
        if hi == len {
            if let Some(tail) = self.complete_tail(src, len, lo)? {
                return Ok(tail);
            }
        } else {
            // Zeros after the data (a writer's reservation): the last entry
            // ends within 8 bytes of the last non-zero byte.
            for end in (hi.saturating_sub(8).max(lo)..=hi).rev() {
                if let Some(tail) = self.complete_tail(src, end, lo)? {
                    return Ok(tail);
                }
            }
        }
        Ok(Tail::clean(self.find_tail(src, len, lo)?))
    }

    /// [`Ctx::recover_tail`] when the file ends in a complete chain;
    /// `None` for a torn tail (including a batch cut at an entry boundary).
    fn complete_tail(
        &self,
        src: &(impl ReadAt + ?Sized),
        len: u64,
        lo: u64,
    ) -> io::Result<Option<Tail>> {
        let Some(last) = consistent_at(src, len)? else {
            return Ok(None);
        };
        // A last entry that says "more of this batch follow" ends an
        // unfinished batch (whether or not it checks): torn. Keeping it
        // would make the next write look like part of that batch.
        if last.trailer.batch_continues() {
            return Ok(None);
        }
        let link = last.layout.prev_end;
        if link < lo || (link > lo && link > HEADER_LEN && consistent_at(src, link)?.is_none()) {
            return Ok(None);
        }
        // The last batch, newest first: the last entry and the entries
        // before it that say "more entries of this batch follow".
        let mut batch = vec![last];
        let mut below = link;
        while below > lo {
            match consistent_at(src, below)? {
                Some(found) if found.trailer.batch_continues() => {
                    below = found.layout.prev_end;
                    batch.push(found);
                }
                _ => break,
            }
        }
        let mut damage = Vec::new();
        let mut intact_keys = Vec::new();
        for found in &batch {
            let mut key = vec![0u8; usize::from(found.layout.key_len)];
            src.read_at(found.layout.key_start, &mut key)?;
            let key_ok = (self.hasher)(&key) == found.trailer.key_hash;
            let (expected, got) = self.checksums(src, found)?;
            if key_ok && expected == got {
                intact_keys.push(key);
            } else {
                damage.push(Damage {
                    range: found.layout.prev_end..found.end(),
                    kind: DamageKind::ChecksumMismatch {
                        key: if key_ok { key } else { Vec::new() },
                        expected,
                        got,
                    },
                });
            }
        }
        if damage.is_empty() {
            return Ok(Some(Tail::clean(len)));
        }
        if !intact_keys.is_empty() {
            intact_keys.reverse();
            damage.push(Damage {
                range: below..len,
                kind: DamageKind::IncompleteBatch { keys: intact_keys },
            });
        }
        damage.sort_by_key(|d| d.range.start);
        Ok(Some(Tail {
            end: len,
            chain_end: below,
            hidden: batch,
            damage,
        }))
    }
}

/// One entry reached by [`walk`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walked {
    pub(crate) end: u64,
    pub(crate) hash: u64,
    pub(crate) tombstone: bool,
    /// The entry fails its checksum: it hides older entries of its key like
    /// a tombstone (`tombstone` is set too), and its key reads as damaged.
    pub(crate) damaged: bool,
}

impl From<&Found> for Walked {
    fn from(found: &Found) -> Walked {
        Walked {
            end: found.end(),
            hash: found.trailer.key_hash,
            tombstone: found.trailer.is_tombstone(),
            damaged: false,
        }
    }
}

impl Walked {
    /// `found`, known to fail its checksum.
    pub(crate) fn damaged(found: &Found) -> Walked {
        Walked {
            tombstone: true,
            damaged: true,
            ..Walked::from(found)
        }
    }
}

/// What [`walk`] saw.
pub(crate) struct WalkOutcome {
    pub(crate) damage: Vec<Damage>,
    /// False when a link jumped below `stop`: the bytes are not the file the
    /// caller thought they were.
    pub(crate) reached_stop: bool,
}

/// Follows the chain from the entry ending at `tail` down to `stop`, newest
/// first, calling `visit` for every entry it can vouch for, and for every
/// entry whose key it can read but whose checksum it found failing (as
/// [`Walked::damaged`], so that it hides older entries of its key).
pub(crate) fn walk(
    bytes: &[u8],
    tail: u64,
    stop: u64,
    ctx: &Ctx,
    mut visit: impl FnMut(Walked),
) -> WalkOutcome {
    let mut damage = Vec::new();
    let mut end = tail;
    // The entry whose `prev_end` is `end`; visited once the link is confirmed.
    let mut pending: Option<Found> = None;
    while end > stop {
        if let Some(found) = ctx.structure(bytes, end) {
            if let Some(next) = pending.replace(found) {
                visit(Walked::from(&next));
            }
            end = found.layout.prev_end;
            continue;
        }
        // The link to `end` leads to no trailer. Either the entry that linked
        // here is damaged (its prev_end is wrong) or the one ending here is.
        let unreadable = (end - 1, end, DamageKind::Unreadable);
        let (resume_below, damaged_end, kind) = match pending.take() {
            Some(next) => match ctx.checksums(bytes, &next) {
                Ok((expected, got)) if expected != got => {
                    visit(Walked::damaged(&next));
                    (
                        next.layout.trailer_start,
                        next.end(),
                        DamageKind::ChecksumMismatch {
                            key: key_in(bytes, next.end()).unwrap_or_default().to_vec(),
                            expected,
                            got,
                        },
                    )
                }
                _ => {
                    visit(Walked::from(&next));
                    unreadable
                }
            },
            None => unreadable,
        };
        let previous = ctx
            .last_valid_entry(bytes, resume_below, stop)
            .ok()
            .flatten();
        let resume = previous.map_or(stop, |p| p.end());
        damage.push(Damage {
            range: resume..damaged_end,
            kind,
        });
        match previous {
            Some(p) if p.end() > stop => {
                end = p.layout.prev_end;
                pending = Some(p);
            }
            _ => end = stop,
        }
    }
    if let Some(next) = pending {
        visit(Walked::from(&next));
    }
    damage.sort_by_key(|d| d.range.start);
    WalkOutcome {
        damage,
        reached_stop: end == stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::append::Appender;
    use mmblob_entry::checksum::key_hash;
    use mmblob_entry::format::Header;

    const STORE_ID: u64 = 0xfeed_f00d;

    fn ctx() -> Ctx {
        Ctx {
            store_id: STORE_ID,
            hasher: key_hash,
        }
    }

    /// A store image holding `entries` as one append each; returns the
    /// bytes and the end of every entry.
    fn image(entries: &[(&[u8], &[u8])]) -> (Vec<u8>, Vec<u64>) {
        let file = tempfile::tempfile().expect("temp file");
        let mut ends = Vec::new();
        let mut tail = HEADER_LEN;
        for (i, (key, value)) in entries.iter().enumerate() {
            let mut appender = Appender::new(STORE_ID, key_hash, tail);
            appender.push(key, value, false, false, i);
            appender.write_to(&file).expect("write");
            tail = appender.end();
            ends.push(tail);
        }
        let mut bytes = Header { store_id: STORE_ID }.encode().to_vec();
        bytes.resize(tail as usize, 0);
        std::os::unix::fs::FileExt::read_exact_at(
            &file,
            &mut bytes[HEADER_LEN as usize..],
            HEADER_LEN,
        )
        .expect("read");
        (bytes, ends)
    }

    fn visited(bytes: &[u8], tail: u64) -> (Vec<u64>, Vec<Damage>) {
        let mut ends = Vec::new();
        let outcome = walk(bytes, tail, HEADER_LEN, &ctx(), |w| {
            if !w.damaged {
                ends.push(w.end);
            }
        });
        assert!(outcome.reached_stop);
        (ends, outcome.damage)
    }

    fn sample() -> (Vec<u8>, Vec<u64>) {
        image(&[
            (b"a", b"first value"),
            (b"b", &[2u8; 100]),
            (b"c", b""),
            (b"d", &[4u8; 7]),
            (b"e", b"last"),
        ])
    }

    #[test]
    fn tail_of_a_clean_image_is_its_length() {
        let (bytes, ends) = sample();
        assert_eq!(
            ctx()
                .find_tail(bytes.as_slice(), bytes.len() as u64, HEADER_LEN)
                .expect("tail"),
            *ends.last().expect("ends")
        );
    }

    #[test]
    fn garbage_after_the_tail_is_not_part_of_it() {
        let (mut bytes, ends) = sample();
        let tail = bytes.len() as u64;
        let last_trailer = bytes[bytes.len() - 32..].to_vec();
        bytes.extend_from_slice(&last_trailer);
        bytes.extend_from_slice(&[0u8; 100]);
        assert_eq!(
            ctx()
                .find_tail(bytes.as_slice(), bytes.len() as u64, HEADER_LEN)
                .expect("tail"),
            tail
        );
        assert_eq!(*ends.last().expect("ends"), tail);
    }

    #[test]
    fn a_zero_tail_of_any_length_is_skipped() {
        let (bytes, ends) = sample();
        let tail = *ends.last().expect("ends");
        for zeros in [
            0usize,
            1,
            7,
            8,
            63,
            64,
            65,
            4095,
            1 << 20,
            (1 << 20) + 13,
            3 << 20,
        ] {
            let mut padded = bytes.clone();
            padded.resize(bytes.len() + zeros, 0);
            let len = padded.len() as u64;
            let hi = skip_zero_tail(padded.as_slice(), len, HEADER_LEN).expect("skip");
            assert!(
                hi >= tail && hi <= tail + 8,
                "{zeros} zeros: {hi} vs {tail}"
            );
            assert_eq!(
                ctx()
                    .find_tail(padded.as_slice(), len, HEADER_LEN)
                    .expect("tail"),
                tail,
                "{zeros} zeros"
            );
        }
    }

    #[test]
    fn an_all_zero_tail_leaves_the_committed_end() {
        let zeros = vec![0u8; 5000];
        assert_eq!(
            skip_zero_tail(zeros.as_slice(), 5000, 64).expect("skip"),
            64
        );
        assert_eq!(skip_zero_tail(zeros.as_slice(), 64, 64).expect("skip"), 64);
        // A source shorter than claimed (trimmed meanwhile) reads as zeros.
        let mut short = vec![0u8; 3000];
        short[2000] = 1;
        assert_eq!(
            skip_zero_tail(short.as_slice(), 9000, 64).expect("skip"),
            2008
        );
    }

    #[test]
    fn an_unfinished_batch_is_cut_back_entirely() {
        let file = tempfile::tempfile().expect("temp file");
        let (bytes, ends) = sample();
        let mut appender = Appender::new(STORE_ID, key_hash, bytes.len() as u64);
        appender.push(b"x", b"1", false, true, 0);
        appender.push(b"y", b"2", false, true, 1);
        appender.push(b"z", b"3", false, false, 2);
        appender.write_to(&file).expect("write");
        let mut whole = bytes.clone();
        whole.resize(appender.end() as usize, 0);
        std::os::unix::fs::FileExt::read_exact_at(
            &file,
            &mut whole[bytes.len()..],
            bytes.len() as u64,
        )
        .expect("read");
        let last_batch_entry = appender.entries()[2].end;
        let src = whole.as_slice();
        assert_eq!(
            ctx()
                .find_tail(src, whole.len() as u64, HEADER_LEN)
                .expect("tail"),
            last_batch_entry
        );
        let second = appender.entries()[1].end;
        assert_eq!(
            ctx().find_tail(src, second, HEADER_LEN).expect("tail"),
            *ends.last().expect("ends")
        );
    }

    #[test]
    fn walk_visits_every_entry_newest_first() {
        let (bytes, ends) = sample();
        let (seen, damage) = visited(&bytes, bytes.len() as u64);
        assert!(damage.is_empty());
        assert_eq!(seen, ends.iter().rev().copied().collect::<Vec<_>>());
    }

    #[test]
    fn a_damaged_trailer_costs_only_its_entry() {
        let (mut bytes, ends) = sample();
        // Corrupt the key_len of entry "b" (index 1): its trailer no longer fits.
        bytes[ends[1] as usize - 8] ^= 0x04;
        let (seen, damage) = visited(&bytes, bytes.len() as u64);
        assert_eq!(seen, vec![ends[4], ends[3], ends[2], ends[0]]);
        assert_eq!(damage.len(), 1);
        assert_eq!(damage[0].range, ends[0]..ends[1]);
    }

    #[test]
    fn a_corrupt_link_that_still_looks_consistent_costs_only_its_entry() {
        let (mut bytes, ends) = sample();
        // Entry "d" (index 3) follows "c" which ends unaligned; flip a low bit
        // of d's prev_end: align() hides it, so d's trailer still looks
        // consistent, but the link points where no entry ends. Only d's
        // checksum can tell, and "c" must survive.
        let prev_end_at = ends[3] as usize - 32;
        assert_ne!(ends[2] % 64, 0, "the test needs an unaligned previous end");
        bytes[prev_end_at] ^= 0x01;
        let (seen, damage) = visited(&bytes, bytes.len() as u64);
        assert_eq!(seen, vec![ends[4], ends[2], ends[1], ends[0]]);
        assert!(matches!(
            damage[0].kind,
            DamageKind::ChecksumMismatch { .. }
        ));
    }
}
