//! Keeping a store honest: sync, refresh, verify, damage and statistics.

use std::os::unix::fs::MetadataExt;

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use mmblob_entry::format::{HEADER_LEN, TRAILER_LEN, Trailer};
use tracing::{info, info_span, warn};

use crate::damage::{Damage, DamageKind, VerifyReport};
use crate::error::Result;
use crate::recovery::{Ctx, Found, Walked, key_in, walk};
use crate::store::{DataStore, State, changes_oldest_first, io_err, load};

/// Sizes that tell whether compaction is worth it; see [`DataStore::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Live keys.
    pub live_entries: u64,
    /// Payload bytes of the live values.
    pub live_bytes: u64,
    /// Bytes compaction would give back (overwritten, deleted, padding of dead entries).
    pub reclaimable_bytes: u64,
    /// Logical length of the store file (the end of its last entry; see
    /// [`DataStore::file_size`]).
    pub file_size: u64,
    /// Bytes of an interrupted write after the last complete entry, cut
    /// off at open (writable handle) or ignored (read-only handle).
    pub torn_bytes: u64,
    /// Damaged stretches known to this handle, torn-tail bytes not counted
    /// (see [`DataStore::damage`]).
    pub damaged: u64,
    /// Keys whose newest entry is known to be damaged and is hidden.
    pub damaged_keys: u64,
}

impl DataStore {
    /// Puts everything written so far on stable storage (`fdatasync`).
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) if the sync fails.
    pub fn sync(&self) -> Result<()> {
        if self.options.read_only {
            return Ok(());
        }
        let (file, target) = {
            let state = self.lock_state();
            (Arc::clone(&state.file), (state.epoch, state.tail))
        };
        // Always sync, even when group commit thinks it is covered: the
        // caller asked for it.
        file.sync_data()
            .map_err(|e| io_err(&self.path, "syncing", e))?;
        self.group_commit.record(target);
        Ok(())
    }

    /// Logical length of the store: the end of its last entry. While a
    /// writer is open the file may be longer (space reserved for the next
    /// writes, zeros, trimmed when the store is dropped); this is the length
    /// the file has once it is closed.
    ///
    /// # Errors
    /// None today; kept so a future version can inspect the file.
    pub fn file_size(&self) -> Result<u64> {
        Ok(self.lock_state().tail)
    }

    /// Live entries, live bytes, reclaimable bytes and file size, from
    /// counters kept by the writer (no scan).
    #[must_use]
    pub fn stats(&self) -> StoreStats {
        let damage = self.damage();
        let damaged_keys = self.damaged_keys().len() as u64;
        let state = self.lock_state();
        let file_size = state.tail;
        StoreStats {
            live_entries: state.live.entries,
            live_bytes: state.live.payload_bytes,
            reclaimable_bytes: file_size.saturating_sub(HEADER_LEN + state.live.entry_bytes),
            file_size,
            torn_bytes: damage
                .iter()
                .filter(|d| d.is_torn_tail())
                .map(Damage::len)
                .sum(),
            damaged: damage.iter().filter(|d| !d.is_torn_tail()).count() as u64,
            damaged_keys,
        }
    }

    /// Damage found so far, in file order: at open (skipped bytes, a
    /// damaged last batch, a truncated file, torn-tail bytes cut or
    /// ignored), by [`DataStore::verify`], by compaction and by refresh.
    /// Each is also logged once as an `error!` event (torn-tail bytes as a
    /// `warn!`).
    #[must_use]
    pub fn damage(&self) -> Vec<Damage> {
        self.damage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Shows a read-only handle what other processes wrote since it opened
    /// or last refreshed, and follows a file that compaction renamed into
    /// place. Does nothing for a writable handle, which sees its own writes.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io), or the errors of open if the file was replaced.
    pub fn refresh(&self) -> Result<()> {
        if !self.options.read_only {
            return Ok(());
        }
        let _span = info_span!("mmblob.refresh", path = %self.path.display()).entered();
        let mut state = self.lock_state();
        if state.store_id == 0 || self.was_replaced(&state)? {
            return self.reload(&mut state);
        }
        let len = state
            .file
            .metadata()
            .map_err(|e| io_err(&self.path, "reading metadata of", e))?
            .len();
        if len < state.tail {
            return self.reload(&mut state);
        }
        if len == state.tail {
            return Ok(());
        }
        let ctx = self.ctx(state.store_id);
        let old_tail = state.tail;
        let tail = ctx
            .find_tail(&*state.file, len, old_tail)
            .map_err(|e| io_err(&self.path, "refreshing", e))?;
        if tail <= old_tail {
            return Ok(());
        }
        self.reserve_map(&mut state, tail)?;
        // SAFETY: `..tail` ends in an entry whose checksum was just verified
        // through the file, so it is committed and never changes.
        unsafe { state.map.extend_readable(tail) };
        let mut fresh = Vec::new();
        let outcome = walk(state.map.readable(), tail, old_tail, &ctx, |entry| {
            fresh.push(entry)
        });
        if !outcome.reached_stop {
            return self.reload(&mut state);
        }
        self.apply_refreshed(&mut state, &fresh, tail);
        let damaged = crate::store::damaged_newest(state.map.readable(), &fresh);
        self.register_damaged_keys(damaged);
        self.record_damage(outcome.damage);
        info!(new_entries = fresh.len(), tail, "refreshed");
        Ok(())
    }

    fn apply_refreshed(&self, state: &mut State, fresh: &[Walked], tail: u64) {
        let map = Arc::clone(&state.map);
        let bytes = map.readable();
        let mut live = state.live;
        self.index
            .apply(&mut live, bytes, &changes_oldest_first(bytes, fresh));
        state.live = live;
        state.tail = tail;
        self.tail.store(tail, Ordering::Release);
    }

    fn was_replaced(&self, state: &State) -> Result<bool> {
        let ours = state
            .file
            .metadata()
            .map_err(|e| io_err(&self.path, "reading metadata of", e))?;
        match std::fs::metadata(&self.path) {
            Ok(now) => Ok(now.dev() != ours.dev() || now.ino() != ours.ino()),
            // Mid-rename or deleted: keep reading what we have.
            Err(_) => Ok(false),
        }
    }

    fn reload(&self, state: &mut State) -> Result<()> {
        let file =
            std::fs::File::open(&self.path).map_err(|e| io_err(&self.path, "reopening", e))?;
        let loaded = load(&self.path, file, &self.options)?;
        info!(tail = loaded.tail, "store file replaced; reloaded");
        self.install(state, loaded);
        Ok(())
    }

    /// Recomputes the checksum of every entry in the file (live, overwritten
    /// and deleted), in parallel with the `parallel` feature. Damage found is
    /// recorded in [`DataStore::damage`] and the report lists everything
    /// known to this handle (so also what open found: torn-tail bytes, a
    /// truncated file). A damaged live entry is hidden from then on (a read
    /// of its key fails with [`Error::Corrupt`](crate::Error::Corrupt)),
    /// and so are the other entries of its batch: a batch is seen whole or
    /// not at all.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) only; damage is reported, not an error.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with_progress(|_| {})
    }

    /// [`DataStore::verify`], calling `progress` with the number of bytes
    /// checked since its previous call.
    ///
    /// # Errors
    /// As [`DataStore::verify`].
    pub fn verify_with_progress(&self, progress: impl Fn(u64) + Sync) -> Result<VerifyReport> {
        let _span = info_span!("mmblob.verify", path = %self.path.display()).entered();
        let (map, tail, store_id) = {
            let state = self.lock_state();
            (Arc::clone(&state.map), state.tail, state.store_id)
        };
        let ctx = self.ctx(store_id);
        let bytes = map.readable();
        let mut entries = Vec::new();
        let outcome = if tail > HEADER_LEN {
            walk(bytes, tail, HEADER_LEN, &ctx, |entry| entries.push(entry))
        } else {
            crate::recovery::WalkOutcome {
                damage: Vec::new(),
                reached_stop: true,
            }
        };
        let mut found = outcome.damage;
        // Entries the walk already found failing are not checked twice.
        let intact: Vec<Walked> = entries.iter().filter(|e| !e.damaged).copied().collect();
        let mut mismatches = check_all(bytes, &ctx, &intact, &progress);
        if !found.is_empty() || !mismatches.is_empty() {
            let mut failing = mismatches.clone();
            failing.extend(
                found
                    .iter()
                    .filter(|d| matches!(d.kind, DamageKind::ChecksumMismatch { .. }))
                    .cloned(),
            );
            found.extend(incomplete_batches(bytes, &ctx, &entries, &failing));
        }
        found.append(&mut mismatches);
        found.sort_by_key(|d| d.range.start);
        if found.is_empty() {
            info!(entries = entries.len(), "verified: every checksum matches");
        } else {
            warn!(damaged = found.len(), "verify found damage");
            self.record_damage(found.clone());
            self.hide_damaged(&found);
        }
        Ok(VerifyReport {
            entries_checked: entries.len() as u64,
            bytes_checked: entries.iter().map(|e| checked_len(e, bytes)).sum(),
            damaged: self.damage(),
        })
    }
}

/// The trailer of the entry ending at `end`, trusted (the walk checked it).
fn trailer_at(bytes: &[u8], end: u64) -> Option<Trailer> {
    let start = usize::try_from(end.checked_sub(TRAILER_LEN)?).ok()?;
    let raw: &[u8; 32] = bytes.get(start..start + 32)?.try_into().ok()?;
    Some(Trailer::decode(raw))
}

/// The intact entries of every batch that is not whole: one that holds an
/// entry of `mismatches`, or whose entries say "more of this batch follow"
/// where the chain reaches damaged bytes instead. One record per batch.
pub(crate) fn incomplete_batches(
    bytes: &[u8],
    ctx: &Ctx,
    entries: &[Walked],
    mismatches: &[Damage],
) -> Vec<Damage> {
    let mut ends: Vec<u64> = entries.iter().map(|e| e.end).collect();
    ends.sort_unstable();
    let damaged: std::collections::BTreeSet<u64> = mismatches.iter().map(|d| d.range.end).collect();
    let continues = |end: u64| trailer_at(bytes, end).is_some_and(|t| t.batch_continues());
    let prev_end = |end: u64| trailer_at(bytes, end).map(|t| t.prev_end);
    // A batch entry whose successor is missing: its batch broke off there.
    let broken = (0..ends.len()).filter(|&i| {
        continues(ends[i])
            && ends
                .get(i + 1)
                .is_none_or(|&next| prev_end(next) != Some(ends[i]))
    });
    let mut seeds: Vec<usize> = damaged
        .iter()
        .filter_map(|bad| ends.binary_search(bad).ok())
        .chain(broken)
        .collect();
    seeds.sort_unstable();
    seeds.dedup();
    let mut out: Vec<Damage> = Vec::new();
    let mut covered_to = 0usize;
    for i in seeds {
        if i < covered_to {
            continue;
        }
        let (mut lo, mut hi) = (i, i);
        while lo > 0 && continues(ends[lo - 1]) && prev_end(ends[lo]) == Some(ends[lo - 1]) {
            lo -= 1;
        }
        while hi + 1 < ends.len() && continues(ends[hi]) && prev_end(ends[hi + 1]) == Some(ends[hi])
        {
            hi += 1;
        }
        covered_to = hi + 1;
        let Some(start) = prev_end(ends[lo]) else {
            continue;
        };
        let keys: Vec<Vec<u8>> = ends[lo..=hi]
            .iter()
            .filter(|end| !damaged.contains(end) && ctx.structure(bytes, **end).is_some())
            .filter_map(|&end| key_in(bytes, end).map(<[u8]>::to_vec))
            .collect();
        if !keys.is_empty() {
            out.push(Damage::new(
                start..ends[hi],
                DamageKind::IncompleteBatch { keys },
            ));
        }
    }
    out
}

fn check_one(bytes: &[u8], ctx: &Ctx, entry: &Walked) -> Option<Damage> {
    let found: Found = ctx.structure(bytes, entry.end)?;
    let layout = &found.layout;
    let payload = bytes.get(layout.payload_start as usize..layout.key_start as usize)?;
    let key = key_in(bytes, entry.end)?;
    let got = found.trailer.compute_crc(ctx.store_id, payload, key);
    (got != found.trailer.crc).then(|| Damage {
        range: layout.prev_end..entry.end,
        kind: DamageKind::ChecksumMismatch {
            key: key.to_vec(),
            expected: found.trailer.crc,
            got,
        },
    })
}

/// Bytes a checksum check of `entry` reads: payload, key and trailer.
fn checked_len(entry: &Walked, bytes: &[u8]) -> u64 {
    let key_len = key_in(bytes, entry.end).map_or(0, |key| key.len() as u64);
    crate::store::entry_sizes(bytes, entry.end)
        .map_or(0, |(payload, _)| payload + key_len + TRAILER_LEN)
}

#[cfg(feature = "parallel")]
pub(crate) fn check_all(
    bytes: &[u8],
    ctx: &Ctx,
    entries: &[Walked],
    progress: &(impl Fn(u64) + Sync),
) -> Vec<Damage> {
    use rayon::prelude::*;
    entries
        .par_iter()
        .filter_map(|entry| {
            progress(checked_len(entry, bytes));
            check_one(bytes, ctx, entry)
        })
        .collect()
}

#[cfg(not(feature = "parallel"))]
pub(crate) fn check_all(
    bytes: &[u8],
    ctx: &Ctx,
    entries: &[Walked],
    progress: &(impl Fn(u64) + Sync),
) -> Vec<Damage> {
    entries
        .iter()
        .filter_map(|entry| {
            progress(checked_len(entry, bytes));
            check_one(bytes, ctx, entry)
        })
        .collect()
}
