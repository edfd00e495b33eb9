//! Salvage: copy every entry that still checks into a new store.
//!
//! The way out of a damaged store. [`DataStore::salvage`] reads the source
//! file directly (it never opens it as a store, so it also works when the
//! store cannot be opened) and follows the trailer chain from the end,
//! checking every entry's checksum. Where a link leads to damaged bytes it
//! scans backward for the previous entry that checks, so one damaged entry
//! costs only itself. It then writes the newest intact version of every key
//! into a new store, respecting tombstones and keeping batches whole, and
//! reports what it left behind.
//!
//! A damaged 64-byte header does not stop it: the store id that seeds every
//! entry checksum is taken from the header when the entries check with it,
//! or else recovered from a single flipped bit, and trusted only when the
//! checksums of entries confirm it.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use mmblob_entry::checksum::key_hash;
use mmblob_entry::format::{HEADER_LEN, Header, HeaderError, MIN_ENTRY_END};
use tracing::{error, info, info_span, warn};

use crate::damage::{Damage, DamageKind};
use crate::error::{Error, Result};
use crate::options::{Durability, OpenOptions};
use crate::recovery::{Ctx, Found, ReadAt, consistent_at};
use crate::store::{DataStore, io_err};

/// Entries checked against each candidate store id when the header is damaged.
const ID_PROBES: usize = 16;
/// Values longer than this are streamed into the new store one at a time.
const STREAM_ABOVE: u64 = 16 << 20;
/// Bytes of small values gathered into one batch write.
const BATCH_BYTES: u64 = 16 << 20;

/// What [`DataStore::salvage`] copied and what it left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SalvageStats {
    /// Keys written into the new store (the newest intact value of each).
    pub entries_copied: u64,
    /// Value bytes written into the new store.
    pub bytes_copied: u64,
    /// Keys whose newest intact entry is a deletion: not copied.
    pub keys_deleted: u64,
    /// Older intact versions of copied or deleted keys, not copied.
    pub versions_superseded: u64,
    /// True when the 64-byte header was damaged and the store id was
    /// recovered from entry checksums.
    pub header_damaged: bool,
    /// Length of the source file.
    pub source_len: u64,
    /// Everything not copied other than superseded versions, in file order:
    /// damaged entries (with their key when it can be read), bytes in which
    /// no entry checks, intact entries of a batch with a damaged or missing
    /// entry, and an interrupted write at the end.
    pub left_behind: Vec<Damage>,
    /// Keys that are not in the new store because their newest entry is
    /// damaged (an older intact version is not copied in its place).
    pub keys_lost: Vec<Vec<u8>>,
}

impl SalvageStats {
    /// True when every entry of the source checked and nothing was left behind.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.left_behind.is_empty() && !self.header_damaged
    }
}

impl DataStore {
    /// Writes every entry of this store that still checks (the newest
    /// version of each key, deletions respected, batches whole) into a new
    /// store at `dest`; see [`DataStore::salvage`].
    ///
    /// # Errors
    /// As [`DataStore::salvage`].
    pub fn salvage_to(&self, dest: impl AsRef<Path>) -> Result<SalvageStats> {
        DataStore::salvage(&self.path, dest)
    }

    /// Copies every entry of the store file at `src` that still checks into
    /// a new store at `dest`, without opening `src` as a store: it works on
    /// a store that cannot be opened, also when its header is damaged but
    /// the store id can still be confirmed by entry checksums.
    ///
    /// Only the newest intact version of each key is copied; a key whose
    /// newest intact entry is a deletion is not copied; a key whose newest
    /// entry is damaged is not copied either (an older value would silently
    /// take its place) and is listed in [`SalvageStats::keys_lost`]. Entries
    /// of a batch with a damaged or missing entry are left behind together,
    /// so batches stay all-or-nothing. Reads `src` twice (checking, then
    /// copying); `dest` is synced before this returns.
    ///
    /// # Errors
    /// [`Error::SameStore`] when `dest` is `src`; an [`Error::Io`] of kind
    /// `AlreadyExists` when `dest` exists and is not empty;
    /// [`Error::NotAStore`] when `src` is too short or nothing in it checks
    /// with any store id it could have; [`Error::Io`].
    pub fn salvage(src: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<SalvageStats> {
        DataStore::salvage_with_progress(src, dest, |_, _| {})
    }

    /// [`DataStore::salvage`], calling `progress(done, total)` with value
    /// bytes copied so far and in all.
    ///
    /// # Errors
    /// As [`DataStore::salvage`].
    pub fn salvage_with_progress(
        src: impl AsRef<Path>,
        dest: impl AsRef<Path>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<SalvageStats> {
        let (src, dest) = (src.as_ref(), dest.as_ref());
        let _span =
            info_span!("mmblob.salvage", src = %src.display(), dest = %dest.display()).entered();
        let file = File::open(src).map_err(|e| io_err(src, "opening", e))?;
        let meta = file
            .metadata()
            .map_err(|e| io_err(src, "reading metadata of", e))?;
        if !meta.is_file() {
            return Err(Error::NotAFile {
                path: src.to_path_buf(),
            });
        }
        check_dest(src, &meta, dest)?;
        let len = meta.len();
        let (store_id, header_damaged) = trusted_store_id(src, &file, len)?;
        let ctx = Ctx {
            store_id,
            hasher: key_hash,
        };
        let items = scan(&file, &ctx, len).map_err(|e| io_err(src, "reading", e))?;
        let mut stats = SalvageStats {
            header_damaged,
            source_len: len,
            ..SalvageStats::default()
        };
        let accepted = keep_batches_whole(&file, items, &mut stats.left_behind)
            .map_err(|e| io_err(src, "reading", e))?;
        let chosen =
            newest_per_key(&file, accepted, &mut stats).map_err(|e| io_err(src, "reading", e))?;
        copy(src, &file, dest, &chosen, &mut stats, &mut progress)?;
        for damage in &stats.left_behind {
            warn!(%damage, "left behind by salvage");
        }
        info!(
            copied = stats.entries_copied,
            bytes = stats.bytes_copied,
            left_behind = stats.left_behind.len(),
            keys_lost = stats.keys_lost.len(),
            "salvaged"
        );
        Ok(stats)
    }
}

/// Refuses a destination that is the source or holds anything.
fn check_dest(src: &Path, src_meta: &std::fs::Metadata, dest: &Path) -> Result<()> {
    let Ok(meta) = std::fs::metadata(dest) else {
        return Ok(());
    };
    if meta.dev() == src_meta.dev() && meta.ino() == src_meta.ino() {
        return Err(Error::SameStore {
            path: src.to_path_buf(),
        });
    }
    if !meta.is_file() {
        return Err(Error::NotAFile {
            path: dest.to_path_buf(),
        });
    }
    if meta.len() > 0 {
        return Err(Error::io(
            format!("salvaging into {}", dest.display()),
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the destination exists and is not empty; salvage writes only into a new store \
                 (choose a new path)",
            ),
        ));
    }
    Ok(())
}

/// The store id to check entries with, and whether the header was damaged.
fn trusted_store_id(path: &Path, file: &File, len: u64) -> Result<(u64, bool)> {
    if len < HEADER_LEN {
        return Err(Error::NotAStore {
            path: path.to_path_buf(),
            reason: format!("only {len} bytes long, shorter than a store header"),
        });
    }
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)
        .map_err(|e| io_err(path, "reading header of", e))?;
    match Header::decode(&header) {
        Ok(h) => return Ok((h.store_id, false)),
        Err(HeaderError::Version(found)) => {
            return Err(Error::UnsupportedVersion {
                path: path.to_path_buf(),
                found,
                supported: mmblob_entry::format::FORMAT_VERSION,
            });
        }
        Err(_) => {}
    }
    let stored = u64::from_le_bytes(header[16..24].try_into().unwrap_or([0; 8]));
    let probes = probe_entries(file, len).map_err(|e| io_err(path, "reading", e))?;
    let candidates = std::iter::once(stored).chain((0..64).map(|bit| stored ^ (1 << bit)));
    let mut best: Option<(usize, u64)> = None;
    for id in candidates {
        let ctx = Ctx {
            store_id: id,
            hasher: key_hash,
        };
        let mut matching = 0;
        for found in &probes {
            if let Ok((stored, computed)) = ctx.checksums(file, found) {
                matching += usize::from(stored == computed);
            }
        }
        if matching > best.map_or(0, |(m, _)| m) {
            best = Some((matching, id));
        }
    }
    match best {
        Some((matching, id)) => {
            error!(path = %path.display(), store_id = id, entries_confirming = matching, "the store header is damaged; the store id was confirmed by entry checksums");
            Ok((id, true))
        }
        None => Err(Error::NotAStore {
            path: path.to_path_buf(),
            reason: "its header is damaged and no entry checks with the store id it holds (or \
                     that id with one bit flipped), so nothing in it can be trusted"
                .into(),
        }),
    }
}

/// Up to [`ID_PROBES`] entries near the end whose structure holds, to test
/// candidate store ids against.
fn probe_entries(file: &File, len: u64) -> io::Result<Vec<Found>> {
    let mut probes = Vec::new();
    let mut end = len;
    let mut scanned = 0u64;
    while end >= MIN_ENTRY_END && probes.len() < ID_PROBES && scanned < (64 << 20) {
        match consistent_at(file, end)? {
            Some(found) if key_matches(file, &found)? => {
                end = found.layout.prev_end;
                probes.push(found);
            }
            _ => {
                end -= 1;
                scanned += 1;
            }
        }
    }
    Ok(probes)
}

fn key_matches(file: &(impl ReadAt + ?Sized), found: &Found) -> io::Result<bool> {
    let mut key = vec![0u8; usize::from(found.layout.key_len)];
    ReadAt::read_at(file, found.layout.key_start, &mut key)?;
    Ok(key_hash(&key) == found.trailer.key_hash)
}

fn read_key(file: &(impl ReadAt + ?Sized), found: &Found) -> io::Result<Vec<u8>> {
    let mut key = vec![0u8; usize::from(found.layout.key_len)];
    ReadAt::read_at(file, found.layout.key_start, &mut key)?;
    Ok(key)
}

/// What the scan saw, in file order.
enum Item {
    /// An entry that checks.
    Entry(Found),
    /// Bytes in which no entry checks.
    Gap {
        damage: Damage,
        /// The damaged entry ending the gap says "more of its batch follow".
        batch_continues: bool,
    },
}

/// Every entry that checks and every stretch between them, in file order.
/// Costs a checksum per entry plus a backward scan over damaged bytes.
fn scan(file: &File, ctx: &Ctx, len: u64) -> io::Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut hi = len;
    while hi > HEADER_LEN {
        let found = match direct(file, ctx, hi)? {
            Some(found) => Some(found),
            None => ctx.last_valid_entry(file, hi, HEADER_LEN)?,
        };
        let below = found.map_or(HEADER_LEN, |f| f.end());
        if below < hi {
            items.push(gap(file, ctx, below..hi, len)?);
        }
        match found {
            Some(found) => {
                hi = found.layout.prev_end;
                items.push(Item::Entry(found));
            }
            None => break,
        }
    }
    items.reverse();
    Ok(items)
}

/// The entry ending exactly at `end`, if it checks.
fn direct(file: &File, ctx: &Ctx, end: u64) -> io::Result<Option<Found>> {
    if end < MIN_ENTRY_END {
        return Ok(None);
    }
    let mut raw = [0u8; 32];
    ReadAt::read_at(file, end - 32, &mut raw)?;
    ctx.valid_entry(file, end, &raw)
}

/// Describes the bytes `range` in which no entry checks.
fn gap(file: &File, ctx: &Ctx, range: Range<u64>, len: u64) -> io::Result<Item> {
    if let Some(found) = consistent_at(file, range.end)?
        && found.layout.prev_end >= range.start
    {
        let key = read_key(file, &found)?;
        let (expected, got) = ctx.checksums(file, &found)?;
        let key = if key_hash(&key) == found.trailer.key_hash {
            key
        } else {
            Vec::new()
        };
        return Ok(Item::Gap {
            damage: Damage::new(range, DamageKind::ChecksumMismatch { key, expected, got }),
            batch_continues: found.trailer.batch_continues(),
        });
    }
    let kind = if range.end == len {
        DamageKind::TornTail { cut: false }
    } else {
        DamageKind::Unreadable
    };
    Ok(Item::Gap {
        damage: Damage::new(range, kind),
        batch_continues: false,
    })
}

/// The entries of complete batches (and single writes); the entries of a
/// batch broken by damage, or unfinished at the end, go to `left_behind`.
fn keep_batches_whole(
    file: &File,
    items: Vec<Item>,
    left_behind: &mut Vec<Damage>,
) -> io::Result<Vec<Found>> {
    let mut accepted = Vec::new();
    let mut pending: Vec<Found> = Vec::new();
    let mut broken = false;
    let leave = |pending: &mut Vec<Found>, left_behind: &mut Vec<Damage>| -> io::Result<()> {
        if let (Some(first), Some(last)) = (pending.first(), pending.last()) {
            let range = first.layout.prev_end..last.end();
            let keys = pending
                .iter()
                .map(|f| read_key(file, f))
                .collect::<io::Result<Vec<_>>>()?;
            left_behind.push(Damage::new(range, DamageKind::IncompleteBatch { keys }));
        }
        pending.clear();
        Ok(())
    };
    for item in items {
        match item {
            Item::Entry(found) => {
                let adjacent = pending
                    .last()
                    .is_none_or(|p| p.end() == found.layout.prev_end);
                if !adjacent {
                    leave(&mut pending, left_behind)?;
                    broken = false;
                }
                pending.push(found);
                if !found.trailer.batch_continues() {
                    if broken {
                        leave(&mut pending, left_behind)?;
                    } else {
                        accepted.append(&mut pending);
                    }
                    broken = false;
                }
            }
            Item::Gap {
                damage,
                batch_continues,
            } => {
                leave(&mut pending, left_behind)?;
                broken = batch_continues;
                left_behind.push(damage);
            }
        }
    }
    leave(&mut pending, left_behind)?;
    left_behind.sort_by_key(|d| d.range.start);
    Ok(accepted)
}

/// The newest intact entry of each key that is not a deletion, in file
/// order; counts what is skipped into `stats`.
fn newest_per_key(
    file: &File,
    accepted: Vec<Found>,
    stats: &mut SalvageStats,
) -> io::Result<Vec<(Vec<u8>, Found)>> {
    // The newest damaged entry of each named key.
    let mut damaged: std::collections::HashMap<Vec<u8>, u64> = std::collections::HashMap::new();
    for damage in &stats.left_behind {
        if let DamageKind::ChecksumMismatch { key, .. } = &damage.kind
            && !key.is_empty()
        {
            let end = damaged.entry(key.clone()).or_insert(0);
            *end = (*end).max(damage.range.end);
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut chosen = Vec::new();
    let mut lost = std::collections::BTreeSet::new();
    for found in accepted.into_iter().rev() {
        let key = read_key(file, &found)?;
        if seen.contains(&key) {
            stats.versions_superseded += 1;
            continue;
        }
        seen.insert(key.clone());
        if damaged.get(&key).is_some_and(|&end| end > found.end()) {
            lost.insert(key);
            continue;
        }
        if found.trailer.is_tombstone() {
            stats.keys_deleted += 1;
        } else {
            chosen.push((key, found));
        }
    }
    lost.extend(damaged.into_keys().filter(|k| !seen.contains(k)));
    stats.keys_lost = lost.into_iter().collect();
    chosen.reverse();
    Ok(chosen)
}

/// Reads `len` bytes of `file` from `start`.
struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.end - self.pos).unwrap_or(usize::MAX));
        if n == 0 {
            return Ok(0);
        }
        let n = FileExt::read_at(self.file, &mut buf[..n], self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Writes `chosen` into a new store at `dest` and syncs it.
fn copy(
    src: &Path,
    file: &File,
    dest: &Path,
    chosen: &[(Vec<u8>, Found)],
    stats: &mut SalvageStats,
    progress: &mut impl FnMut(u64, u64),
) -> Result<()> {
    let total: u64 = chosen.iter().map(|(_, f)| f.layout.payload_len).sum();
    let out = OpenOptions::new().durability(Durability::None).open(dest)?;
    if !out.is_empty() {
        return Err(Error::io(
            format!("salvaging into {}", dest.display()),
            io::Error::new(io::ErrorKind::AlreadyExists, "the destination is not empty"),
        ));
    }
    let mut done = 0u64;
    let mut batch: Vec<(&[u8], Vec<u8>)> = Vec::new();
    let mut batch_bytes = 0u64;
    let flush = |batch: &mut Vec<(&[u8], Vec<u8>)>| -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let refs: Vec<(&[u8], &[u8])> = batch.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        out.batch_write(&refs)?;
        batch.clear();
        Ok(())
    };
    for (key, found) in chosen {
        let len = found.layout.payload_len;
        if len > STREAM_ABOVE {
            flush(&mut batch)?;
            batch_bytes = 0;
            let mut reader = RangeReader {
                file,
                pos: found.layout.payload_start,
                end: found.layout.key_start,
            };
            out.write_stream(key, &mut reader)?;
        } else {
            let mut value = vec![0u8; usize::try_from(len).unwrap_or(0)];
            ReadAt::read_at(file, found.layout.payload_start, &mut value)
                .map_err(|e| io_err(src, "reading", e))?;
            batch.push((key, value));
            batch_bytes += len;
            if batch_bytes >= BATCH_BYTES || batch.len() >= 4096 {
                flush(&mut batch)?;
                batch_bytes = 0;
            }
        }
        done += len;
        stats.entries_copied += 1;
        stats.bytes_copied += len;
        progress(done, total);
    }
    flush(&mut batch)?;
    out.sync()?;
    drop(out);
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}
