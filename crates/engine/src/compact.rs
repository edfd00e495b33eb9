//! Online compaction: rewrite the live entries into a new file and swap it in.
//!
//! The new file is written next to the store under a temporary name, synced,
//! locked, renamed over the store and the directory synced. Until the rename
//! the old file is the store; after it the new file, complete and synced, is.
//! Readers keep reading the old map until each index shard is repointed (a
//! pointer swap per shard); handles taken before keep the old map alive.
//! Writers wait for the writer lock while compaction runs.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use mmblob_entry::Mapping;
use mmblob_entry::checksum::EntryCrc;
use mmblob_entry::format::{HEADER_LEN, Header, TRAILER_LEN, Trailer, payload_start};
use tracing::{info, info_span};

use crate::append::Appender;
use crate::damage::{Damage, DamageKind};
use crate::error::{Error, Result};
use crate::index::{Index, shard_of};
use crate::recovery::{Ctx, Found, key_in, walk};
use crate::store::{
    DataStore, LiveTotals, State, io_err, map_capacity, new_store_id, parent_dir, sync_dir,
};
use crate::table::Table;

/// Scratch bytes gathered before one write call during compaction.
const COPY_BATCH_BYTES: usize = 8 << 20;
/// Values at least this long are copied piece by piece, reporting progress
/// after each piece, so a progress bar moves during a multi-GiB value.
const PIECE_BYTES: usize = 8 << 20;

/// What [`DataStore::compact`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactStats {
    /// File length before.
    pub bytes_before: u64,
    /// File length after.
    pub bytes_after: u64,
    /// Live entries copied.
    pub entries_kept: u64,
    /// Overwritten values and tombstones left behind.
    pub entries_dropped: u64,
}

/// The file compaction replaces: `store` with symlinks resolved, so that
/// the rename replaces the file a link points to, not the link (which would
/// leave the file behind, stale, for everyone opening it by another name).
pub(crate) fn compaction_target(store: &Path) -> PathBuf {
    std::fs::canonicalize(store).unwrap_or_else(|_| store.to_path_buf())
}

/// Where compaction writes the new file before renaming it over `store`
/// (a path from [`compaction_target`]).
pub(crate) fn compaction_temp_path(store: &Path) -> PathBuf {
    let name = store
        .file_name()
        .map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
    parent_dir(store).join(format!(".{name}.compacting"))
}

impl DataStore {
    /// Rewrites the live entries into a new file and replaces the store file
    /// with it, online. See the module docs for the crash analysis.
    ///
    /// # Errors
    /// [`Error::ReadOnly`], [`Error::Io`]; [`Error::Corrupt`] when a live
    /// value fails its checksum (it is recorded in [`DataStore::damage`];
    /// delete or rewrite that key, then compact). On error the store is
    /// unchanged, except when only the final directory sync fails: then the
    /// compacted file is already the store and in use.
    pub fn compact(&self) -> Result<CompactStats> {
        self.compact_with_progress(|_| {})
    }

    /// [`DataStore::compact`], calling `progress` with the number of live
    /// bytes copied since its previous call: after every 8 MiB or so,
    /// also in the middle of a large value.
    ///
    /// # Errors
    /// As [`DataStore::compact`].
    pub fn compact_with_progress(&self, progress: impl Fn(u64)) -> Result<CompactStats> {
        self.check_writable("compact")?;
        let _span = info_span!("mmblob.compact", path = %self.path.display()).entered();
        let started = Instant::now();
        let mut state = self.lock_state();
        self.refuse_unreadable_damage()?;
        let store = compaction_target(&self.path);
        let temp = compaction_temp_path(&store);
        let result = self.rewrite(&mut state, &store, &temp, &progress);
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        let stats = result?;
        // Damage of the old file (dead entries only, see above) is gone with it.
        self.damage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        drop(state);
        // The new file's index is in hand: leave its sidecar now, so the next
        // open of a large compacted store does not walk it, even after a crash.
        self.save_snapshot();
        info!(
            bytes_before = stats.bytes_before,
            bytes_after = stats.bytes_after,
            entries_kept = stats.entries_kept,
            entries_dropped = stats.entries_dropped,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compacted"
        );
        Ok(stats)
    }

    /// Bytes that open had to skip may have held live entries; compacting
    /// would discard them for good, so refuse and say what to do instead.
    /// (A damaged *live* value is refused while copying; damaged dead
    /// entries are dropped like any dead entry.)
    fn refuse_unreadable_damage(&self) -> Result<()> {
        let damage = self.damage();
        if let Some(first) = damage.iter().find(|d| d.kind == DamageKind::Unreadable) {
            return Err(Error::Corrupt {
                offset: first.range.start,
                reason: format!(
                    "{first}; compaction would discard these bytes for good. Copy every intact \
                     entry into a new store instead with `mmblob salvage SRC DEST` \
                     (DataStore::salvage_to)"
                ),
            });
        }
        // Hidden damaged entries would be dropped for good too, unless
        // their key was written again since.
        let hidden = self.damaged_keys();
        if let Some((key, offset)) = hidden
            .iter()
            .find(|(key, _)| !self.index.contains(self.hash(key), key))
        {
            return Err(Error::Corrupt {
                offset: *offset,
                reason: format!(
                    "the newest entry of key {} is damaged; compaction would drop it for good. \
                     Write the key again, or copy every intact entry into a new store with \
                     `mmblob salvage SRC DEST` (DataStore::salvage_to)",
                    mmblob_entry::display_key(key)
                ),
            });
        }
        Ok(())
    }

    fn rewrite(
        &self,
        state: &mut State,
        store: &Path,
        temp: &Path,
        progress: &impl Fn(u64),
    ) -> Result<CompactStats> {
        let map = Arc::clone(&state.map);
        let bytes = map.readable();
        let mut total_entries = 0u64;
        walk(
            bytes,
            state.tail,
            HEADER_LEN,
            &self.ctx(state.store_id),
            |_| total_entries += 1,
        );
        // Holding the writer lock, so every shard refers to `map`.
        let (_, live) = self.index.snapshot_in_file_order();
        let live: Vec<u64> = live.iter().collect();

        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(temp)
            .map_err(|e| io_err(temp, "creating", e))?;
        // A fresh id: the new file is a different sequence of entries, so
        // nothing keyed to the old one (an index sidecar) can match it.
        let new_id = new_store_id();
        file.write_all_at(&Header { store_id: new_id }.encode(), 0)
            .map_err(|e| io_err(temp, "writing header of", e))?;
        let target = Target {
            file: &file,
            path: temp,
            store_id: new_id,
        };
        let (tail, tables) =
            self.copy_entries(&self.ctx(state.store_id), &target, bytes, &live, progress)?;
        file.sync_all().map_err(|e| io_err(temp, "syncing", e))?;

        let lock = File::open(temp).map_err(|e| io_err(temp, "opening for locking", e))?;
        lock.try_lock()
            .map_err(|e| Error::io(format!("locking {}", temp.display()), e.into()))?;
        // SAFETY: `..tail` was written and synced above and is never changed.
        let new_map = unsafe { Mapping::new(&file, map_capacity(tail), tail, new_id) }
            .map_err(|e| io_err(temp, "mapping", e))?;
        std::fs::rename(temp, store)
            .map_err(|e| io_err(store, "renaming the compacted file over", e))?;

        // The new file is the store now: switch to it before anything else
        // can fail, or later writes would go to the old, unlinked file.
        let new_map = Arc::new(new_map);
        self.index.replace(tables, &new_map);
        let before = state.tail;
        state.file = Arc::new(file);
        state.lock = Some(lock);
        state.map.retire();
        state.map = new_map;
        state.tail = tail;
        state.store_id = new_id;
        state.snapshot_tail = None;
        state.epoch += 1;
        state.needs_truncate = false;
        state.live = LiveTotals {
            entry_bytes: tail - HEADER_LEN,
            ..state.live
        };
        self.tail.store(tail, Ordering::Release);
        sync_dir(&parent_dir(store)).map_err(|e| {
            let doing = "syncing the directory (the compacted file is in use) of";
            io_err(store, doing, e)
        })?;
        let kept = live.len() as u64;
        Ok(CompactStats {
            bytes_before: before,
            bytes_after: tail,
            entries_kept: kept,
            entries_dropped: total_entries.saturating_sub(kept),
        })
    }

    /// Appends the entries ending at `live` (in file order) to `file`;
    /// returns the new tail and the index tables for the new offsets.
    pub(crate) fn copy_entries(
        &self,
        ctx: &Ctx,
        target: &Target<'_>,
        bytes: &[u8],
        live: &[u64],
        progress: &impl Fn(u64),
    ) -> Result<(u64, Vec<Table>)> {
        let mut per_shard = vec![0usize; Index::shard_count()];
        for &end in live {
            if let Some(found) = ctx.structure(bytes, end) {
                per_shard[shard_of(found.trailer.key_hash)] += 1;
            }
        }
        let tables: Vec<Table> = per_shard.into_iter().map(Table::with_capacity).collect();
        let mut tail = HEADER_LEN;
        for chunk in batches(bytes, live) {
            if let &[end] = chunk
                && let (Some(found), Some(key)) = (ctx.structure(bytes, end), key_in(bytes, end))
                && found.layout.payload_len >= PIECE_BYTES as u64
            {
                // A large value, alone in its chunk (see `batches`): copied
                // in pieces, with progress after each.
                let layout = found.layout;
                let value = &bytes[layout.payload_start as usize..layout.key_start as usize];
                let entry = self.copy_large(ctx, target, &found, key, value, tail, progress)?;
                tables[shard_of(entry.0)].insert_new(entry.0, entry.1);
                tail = entry.1;
                continue;
            }
            let mut appender = Appender::new(target.store_id, self.options.hasher, tail);
            let mut copied = 0u64;
            for (i, &end) in chunk.iter().enumerate() {
                let (Some(found), Some(key)) = (ctx.structure(bytes, end), key_in(bytes, end))
                else {
                    continue;
                };
                let layout = found.layout;
                let value = &bytes[layout.payload_start as usize..layout.key_start as usize];
                // The copy gets a fresh checksum: copying a damaged value would
                // make its damage undetectable, so refuse instead.
                let got = found.trailer.compute_crc(ctx.store_id, value, key);
                if got != found.trailer.crc {
                    return Err(self.damaged_live_value(&found, key, got));
                }
                appender.push(key, value, false, false, i);
                copied += layout.payload_len;
            }
            appender
                .write_to(target.file)
                .map_err(|e| io_err(target.path, "writing", e))?;
            for entry in appender.entries() {
                tables[shard_of(entry.hash)].insert_new(entry.hash, entry.end);
            }
            tail = appender.end();
            progress(copied);
        }
        Ok((tail, tables))
    }

    /// Copies one large entry to `target` at `at`, a piece of the value at a
    /// time: each piece is written, added to the old checksum (checked at the
    /// end) and to the new one, and reported to `progress`. Returns the key
    /// hash and the end of the copied entry.
    #[allow(clippy::too_many_arguments)]
    fn copy_large(
        &self,
        ctx: &Ctx,
        target: &Target<'_>,
        found: &Found,
        key: &[u8],
        value: &[u8],
        at: u64,
        progress: &impl Fn(u64),
    ) -> Result<(u64, u64)> {
        let write = |bytes: &[u8], offset: u64| {
            target
                .file
                .write_all_at(bytes, offset)
                .map_err(|e| io_err(target.path, "writing", e))
        };
        let len = value.len() as u64;
        // Cannot fail: file offsets are far below 2^63.
        let start = payload_start(at, len).unwrap_or(at);
        write(&[0u8; 64][..(start - at) as usize], at)?;
        let mut old_crc = EntryCrc::new(ctx.store_id);
        let mut new_crc = EntryCrc::new(target.store_id);
        let mut offset = start;
        for piece in value.chunks(PIECE_BYTES) {
            write(piece, offset)?;
            old_crc.update(piece);
            new_crc.update(piece);
            offset += piece.len() as u64;
            progress(piece.len() as u64);
        }
        old_crc.update(key);
        new_crc.update(key);
        let got = old_crc.finish_with(&found.trailer);
        if got != found.trailer.crc {
            return Err(self.damaged_live_value(found, key, got));
        }
        let mut trailer = Trailer {
            prev_end: at,
            key_hash: (self.options.hasher)(key),
            flags: 0,
            crc: 0,
            ..found.trailer
        };
        trailer.crc = new_crc.finish_with(&trailer);
        write(key, offset)?;
        write(&trailer.encode(), offset + key.len() as u64)?;
        Ok((trailer.key_hash, offset + key.len() as u64 + TRAILER_LEN))
    }

    /// Records a live entry that fails its checksum; the error for `compact`.
    fn damaged_live_value(&self, found: &Found, key: &[u8], got: u32) -> Error {
        let damage = Damage {
            range: found.layout.prev_end..found.end(),
            kind: DamageKind::ChecksumMismatch {
                key: key.to_vec(),
                expected: found.trailer.crc,
                got,
            },
        };
        let err = Error::Corrupt {
            offset: found.layout.payload_start,
            reason: format!(
                "{damage}; compaction would hide the damage, so it stopped: \
                 delete or rewrite the key, then compact"
            ),
        };
        self.record_damage(vec![damage]);
        err
    }
}

/// The file compaction writes to.
pub(crate) struct Target<'a> {
    pub(crate) file: &'a File,
    pub(crate) path: &'a Path,
    pub(crate) store_id: u64,
}

/// Splits `live` into runs whose small values fit one scratch buffer.
fn batches<'a>(bytes: &'a [u8], live: &'a [u64]) -> impl Iterator<Item = &'a [u64]> + 'a {
    let mut rest = live;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut size = 0usize;
        let mut count = 0;
        while count < rest.len() && (count == 0 || size < COPY_BATCH_BYTES) && count < 4096 {
            let (payload, entry) = crate::store::entry_sizes(bytes, rest[count]).unwrap_or((0, 0));
            if payload >= PIECE_BYTES as u64 {
                // A large value goes alone, copied in pieces.
                count += usize::from(count == 0);
                break;
            }
            size += entry as usize;
            count += 1;
        }
        let (chunk, tail) = rest.split_at(count);
        rest = tail;
        Some(chunk)
    })
}
