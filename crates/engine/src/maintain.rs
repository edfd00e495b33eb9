//! Keeping a store honest: sync, refresh, verify, damage and statistics.

use std::os::unix::fs::MetadataExt;

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use mmblob_entry::format::{HEADER_LEN, TRAILER_LEN};
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
        let state = self.lock_state();
        let file_size = state.tail;
        StoreStats {
            live_entries: state.live.entries,
            live_bytes: state.live.payload_bytes,
            reclaimable_bytes: file_size.saturating_sub(HEADER_LEN + state.live.entry_bytes),
            file_size,
        }
    }

    /// Damage found so far: at open, by [`DataStore::verify`] and by refresh.
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
    /// returned and also recorded in [`DataStore::damage`].
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
        let mut damaged = outcome.damage;
        damaged.extend(check_all(bytes, &ctx, &entries, &progress));
        damaged.sort_by_key(|d| d.range.start);
        let report = VerifyReport {
            entries_checked: entries.len() as u64,
            bytes_checked: entries.iter().map(|e| checked_len(e, bytes)).sum(),
            damaged,
        };
        if report.is_ok() {
            info!(
                entries = report.entries_checked,
                bytes = report.bytes_checked,
                "verified: no damage"
            );
        } else {
            warn!(damaged = report.damaged.len(), "verify found damage");
            self.record_damage(report.damaged.clone());
        }
        Ok(report)
    }
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
fn check_all(
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
fn check_all(
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
