//! Writes: single, batched, streamed, deletes, renames and moves between stores.

use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mmblob_entry::EntryHandle;
use mmblob_entry::checksum::EntryCrc;
use mmblob_entry::format::{TRAILER_LEN, Trailer, align_up};
use tracing::error;

use crate::append::{Appended, Appender, check_key};
use crate::error::{Error, Result};
use crate::index::Change;
use crate::options::Durability;
use crate::store::{DataStore, State, io_err};

/// Bytes read from a `write_stream` source and written per call (pieces
/// this size stay in cache between the read, the checksum and the write,
/// which makes them faster than 1 MiB ones here).
const STREAM_CHUNK: usize = 64 << 10;

impl DataStore {
    /// Stores `value` under `key`, replacing any earlier value.
    ///
    /// Returns the new end of the file. The value can be empty and can hold
    /// any bytes.
    ///
    /// # Errors
    /// [`Error::InvalidKey`], [`Error::ReadOnly`], or [`Error::Io`] when the
    /// append fails (then nothing of it is visible and the store stays usable).
    pub fn write(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<u64> {
        let key = key.as_ref();
        let value = value.as_ref();
        self.batch_write(&[(key, value)])
    }

    /// Stores several values atomically: after a crash either all of them
    /// are in the store or none. Within the batch the last write of a key
    /// wins. An empty batch writes nothing.
    ///
    /// # Errors
    /// As [`DataStore::write`]; nothing is written if any key is invalid.
    /// [`Error::ReservedKey`] for a key in the stored form of a
    /// [namespace](DataStore::namespace) key.
    pub fn batch_write(&self, entries: &[(&[u8], &[u8])]) -> Result<u64> {
        for (key, _) in entries {
            crate::namespace::refuse_reserved(key)?;
        }
        self.batch_write_raw(entries)
    }

    /// [`DataStore::batch_write`] for pairs of anything that can be viewed
    /// as bytes, owned or borrowed: `Vec<(String, Vec<u8>)>`,
    /// `&[(&str, &str)]`, ... Atomic like `batch_write`.
    ///
    /// (`batch_write` itself keeps its slice-of-slices parameter: a generic
    /// one would stop `batch_write(&[])` and arrays mixing byte strings of
    /// different lengths from compiling.)
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = mmblob_engine::DataStore::open(dir.path().join("s")).unwrap();
    /// let rows: Vec<(String, Vec<u8>)> = (0..3).map(|i| (format!("row/{i}"), vec![i; 4])).collect();
    /// store.batch_write_pairs(&rows)?;
    /// store.batch_write_pairs(&[("greeting", "hello"), ("farewell", "bye")])?;
    /// assert_eq!(store.len(), 5);
    /// # Ok::<(), mmblob_engine::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`DataStore::batch_write`].
    pub fn batch_write_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        entries: &[(K, V)],
    ) -> Result<u64> {
        let refs: Vec<(&[u8], &[u8])> = entries
            .iter()
            .map(|(key, value)| (key.as_ref(), value.as_ref()))
            .collect();
        self.batch_write(&refs)
    }

    /// [`DataStore::batch_write`] that accepts namespaced keys.
    pub(crate) fn batch_write_raw(&self, entries: &[(&[u8], &[u8])]) -> Result<u64> {
        self.apply_batch("write", entries.len(), |i| {
            let (key, value) = entries[i];
            (key, Some(value))
        })
        .map(|outcome| outcome.end)
    }

    /// Deletes `key`; returns whether it existed. Writes nothing if it did not.
    ///
    /// # Errors
    /// [`Error::InvalidKey`], [`Error::ReadOnly`], [`Error::Io`].
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        Ok(self.batch_delete(&[key])? == 1)
    }

    /// Deletes every listed key that exists, atomically; returns how many existed.
    ///
    /// # Errors
    /// As [`DataStore::delete`].
    pub fn batch_delete(&self, keys: &[&[u8]]) -> Result<usize> {
        self.apply_batch("delete", keys.len(), |i| (keys[i], None))
            .map(|outcome| outcome.deleted)
    }

    /// Moves the value of `old` to `new` in one atomic step; a value already
    /// under `new` is replaced.
    ///
    /// # Errors
    /// [`Error::KeyNotFound`] when `old` does not exist, and as [`DataStore::write`].
    pub fn rename(&self, old: impl AsRef<[u8]>, new: impl AsRef<[u8]>) -> Result<()> {
        let old = old.as_ref();
        let new = new.as_ref();
        crate::namespace::refuse_reserved(new)?;
        self.rename_batch(old, new)
    }

    /// Copies the value of `key` into `target` under the same key, streaming
    /// it (no full copy in memory).
    ///
    /// # Errors
    /// [`Error::KeyNotFound`], [`Error::SameStore`], and the errors of
    /// [`DataStore::write_stream`] on `target`.
    pub fn copy_to(&self, key: impl AsRef<[u8]>, target: &DataStore) -> Result<()> {
        let key = key.as_ref();
        self.copy_entry(key, target).map(drop)
    }

    /// [`DataStore::copy_to`], returning the entry that was copied.
    fn copy_entry(&self, key: &[u8], target: &DataStore) -> Result<EntryHandle> {
        check_key(key)?;
        if self.is_same_store(target)? {
            return Err(Error::SameStore {
                path: self.path.clone(),
            });
        }
        let entry = self
            .read(key)?
            .ok_or_else(|| Error::KeyNotFound { key: key.to_vec() })?;
        target.write_stream(key, &mut entry.stream())?;
        Ok(entry)
    }

    /// Moves `key` into `target`: copies it, then deletes it here. If the
    /// delete fails the key exists in both stores, never in neither. If
    /// another thread writes `key` here while the transfer runs, that newer
    /// value was not moved and stays here.
    ///
    /// # Errors
    /// As [`DataStore::copy_to`], plus the errors of [`DataStore::delete`].
    pub fn transfer_to(&self, key: impl AsRef<[u8]>, target: &DataStore) -> Result<()> {
        let key = key.as_ref();
        self.check_writable("transfer")?;
        let copied = self.copy_entry(key, target)?;
        self.delete_if_unchanged(&copied)
    }

    /// Deletes the key of `copied` if it still holds that value. The copy ran
    /// without the writer lock, so the key may have been overwritten since;
    /// deleting it blindly would lose a value that exists nowhere else.
    fn delete_if_unchanged(&self, copied: &EntryHandle) -> Result<()> {
        let key = copied.key();
        let mut state = self.lock_state();
        let Some((map, end)) = self.index.get(self.hash(key), key) else {
            return Ok(());
        };
        // Same file (compaction gives a new id) and same end: the same entry.
        // Otherwise compare the bytes: compaction may have moved the value.
        let same_entry =
            map.store_id() == copied.mapping().store_id() && end == copied.end_offset();
        if !same_entry && EntryHandle::at(map, end)?.as_slice() != copied.as_slice() {
            return Ok(());
        }
        let mut appender = Appender::new(state.store_id, self.options.hasher, state.tail);
        appender.push(key, &[], true, false, 0);
        let end = self.commit(&mut state, &appender, |_| key)?;
        let epoch = state.epoch;
        drop(state);
        self.make_durable(end, epoch).map(drop)
    }

    fn is_same_store(&self, other: &DataStore) -> Result<bool> {
        if std::ptr::eq(self, other) {
            return Ok(true);
        }
        let ours = self.lock_state().file.metadata();
        let theirs = other.lock_state().file.metadata();
        let same_file = match (ours, theirs) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            (Err(e), _) | (_, Err(e)) => {
                return Err(io_err(&self.path, "reading metadata of", e));
            }
        };
        // After compaction renamed a new file (with a new store id) over the
        // store, a handle that has not refreshed still holds the old file: a
        // different inode, but the same store, because its path names the
        // same file.
        Ok(same_file || same_path(&self.path, &other.path))
    }

    /// Stores the bytes of `reader` under `key` without holding them in
    /// memory (64 KiB at a time). `Interrupted` reads are retried; any other
    /// read or write error aborts the write and leaves nothing visible. A
    /// reader that yields no bytes stores an empty value.
    ///
    /// # Errors
    /// [`Error::InvalidKey`], [`Error::ReadOnly`], [`Error::Io`] for a failed
    /// read of `reader` or a failed write.
    pub fn write_stream(&self, key: impl AsRef<[u8]>, reader: &mut impl Read) -> Result<u64> {
        let key = key.as_ref();
        crate::namespace::refuse_reserved(key)?;
        self.write_stream_raw(key, reader)
    }

    /// [`DataStore::write_stream`] that accepts namespaced keys.
    pub(crate) fn write_stream_raw(&self, key: &[u8], reader: &mut impl Read) -> Result<u64> {
        self.check_writable("write")?;
        check_key(key)?;
        let mut buf = vec![0u8; STREAM_CHUNK];
        let first = read_retrying(reader, &mut buf)
            .map_err(|e| Error::io("reading the value to store", e))?;
        if first == 0 {
            return self.batch_write_raw(&[(key, &[])]);
        }
        let mut state = self.lock_state();
        self.cut_failed_append(&mut state)?;
        let prev_end = state.tail;
        // The reader runs while bytes past the tail are half written. Should
        // it panic, this flag stays set and the next writer cuts them off.
        state.needs_truncate = true;
        let streamed = self.stream_entry(&mut state, key, reader, &mut buf, first);
        let (trailer, end) = match streamed {
            Ok(done) => done,
            Err(e) => return Err(self.roll_back(&mut state, prev_end, e)),
        };
        let appended = Appended {
            hash: trailer.key_hash,
            end,
            tombstone: false,
            position: 0,
            payload_len: trailer.payload_len,
            size: end - prev_end,
        };
        state.wrote_through_file(appended.end);
        self.publish(&mut state, &[appended], |_| key);
        state.needs_truncate = false;
        let epoch = state.epoch;
        drop(state);
        self.make_durable(end, epoch)
    }

    /// Writes pad, payload (from `buf[..first]` then `reader`), key and
    /// trailer after the tail; returns the trailer and the new end.
    fn stream_entry(
        &self,
        state: &mut State,
        key: &[u8],
        reader: &mut impl Read,
        buf: &mut [u8],
        first: usize,
    ) -> Result<(Trailer, u64)> {
        let prev_end = state.tail;
        let start = align_up(prev_end).ok_or(Error::ValueTooLarge { len: u64::MAX })?;
        let file = Arc::clone(&state.file);
        let write_err = |e| io_err(&self.path, "appending to", e);
        file.write_all_at(&[0u8; 64][..(start - prev_end) as usize], prev_end)
            .map_err(write_err)?;
        let mut crc = EntryCrc::new(state.store_id);
        let mut pos = start;
        let mut filled = first;
        while filled > 0 {
            crc.update(&buf[..filled]);
            file.write_all_at(&buf[..filled], pos).map_err(write_err)?;
            pos += filled as u64;
            filled = read_retrying(reader, buf)
                .map_err(|e| Error::io("reading the value to store", e))?;
        }
        crc.update(key);
        let mut trailer = Trailer {
            prev_end,
            key_hash: self.hash(key),
            payload_len: pos - start,
            key_len: key.len() as u16,
            flags: 0,
            crc: 0,
        };
        trailer.crc = crc.finish_with(&trailer);
        let mut tail_bytes = key.to_vec();
        tail_bytes.extend_from_slice(&trailer.encode());
        let end = pos + key.len() as u64 + TRAILER_LEN;
        // The trailer makes the entry valid, and a reader in another process
        // may map a valid entry at once; so grow the map first, or a failure
        // to map would cut off bytes that reader already uses (SIGBUS).
        self.reserve_map(state, end)?;
        file.write_all_at(&tail_bytes, pos).map_err(write_err)?;
        Ok((trailer, end))
    }

    /// Appends the encoded entries, then makes them visible. On failure the
    /// file is cut back and nothing is visible.
    pub(crate) fn commit<'k>(
        &self,
        state: &mut State,
        appender: &Appender<'_>,
        key_of: impl Fn(usize) -> &'k [u8],
    ) -> Result<u64> {
        self.cut_failed_append(state)?;
        let prev_end = state.tail;
        // Grow the map before writing: once written, the entries are valid
        // and a reader in another process may map them, so failing to map
        // afterwards would cut off bytes that reader already uses (SIGBUS).
        self.reserve_map(state, appender.end())?;
        self.append_encoded(state, appender, prev_end)?;
        self.publish(state, appender.entries(), key_of);
        Ok(appender.end())
    }

    /// Writes the entries of `appender` after whatever is already written
    /// past the tail, without making them visible. On failure the file is
    /// cut back to `prev_end` (the tail before the whole batch began) and
    /// the error is returned.
    pub(crate) fn append(
        &self,
        state: &mut State,
        appender: &Appender<'_>,
        prev_end: u64,
    ) -> Result<()> {
        // Grow the map before writing: once written, the entries are valid
        // and a reader in another process may map them, so failing to map
        // afterwards would cut off bytes that reader already uses (SIGBUS).
        if let Err(e) = self.reserve_map(state, appender.end()) {
            return Err(self.roll_back(state, prev_end, e));
        }
        self.append_encoded(state, appender, prev_end)
    }

    /// Exposes appended entries to readers: map, index, totals, tail. The
    /// caller reserved the map for them before writing (see `append`).
    pub(crate) fn publish<'k>(
        &self,
        state: &mut State,
        entries: &[Appended],
        key_of: impl Fn(usize) -> &'k [u8],
    ) {
        /// Index changes built at a time: a large batch does not need a
        /// second list as long as itself.
        const CHANGES_AT_ONCE: usize = 4096;
        let Some(last) = entries.last() else {
            return;
        };
        // SAFETY: the bytes up to `last.end` were just written to the file and
        // are committed: mmblob never changes or truncates them.
        unsafe { state.map.extend_readable(last.end) };
        let map = Arc::clone(&state.map);
        if entries.len() > CHANGES_AT_ONCE {
            let added = entries.iter().filter(|e| !e.tombstone).map(|e| e.hash);
            self.index.reserve(added);
        }
        let mut changes: Vec<Change<'_>> = Vec::with_capacity(entries.len().min(CHANGES_AT_ONCE));
        for few in entries.chunks(CHANGES_AT_ONCE) {
            changes.clear();
            changes.extend(few.iter().map(|entry| Change {
                hash: entry.hash,
                end: entry.end,
                tombstone: entry.tombstone,
                key: key_of(entry.position),
                payload_len: entry.payload_len,
                size: entry.size,
            }));
            self.index.apply(&mut state.live, map.readable(), &changes);
        }
        state.tail = last.end;
        self.tail.store(last.end, Ordering::Release);
    }

    /// Cuts the file back to `prev_end` after a failed append and returns `err`.
    pub(crate) fn roll_back(&self, state: &mut State, prev_end: u64, err: Error) -> Error {
        error!(path = %self.path.display(), error = %err, "append failed; nothing of it is visible");
        state.wmap.forget();
        state.needs_truncate = state.file.set_len(prev_end).is_err();
        err
    }

    pub(crate) fn cut_failed_append(&self, state: &mut State) -> Result<()> {
        if state.needs_truncate {
            state.wmap.forget();
            state
                .file
                .set_len(state.tail)
                .map_err(|e| io_err(&self.path, "cutting a failed append from", e))?;
            state.needs_truncate = false;
        }
        Ok(())
    }

    /// Applies the store's durability to a write that ended at `end`.
    pub(crate) fn make_durable(&self, end: u64, epoch: u64) -> Result<u64> {
        if self.options.durability == Durability::Sync {
            self.sync_through(epoch, end)?;
        }
        Ok(end)
    }

    /// Makes everything up to `end` durable. Writers that arrive while a sync
    /// runs wait for it and then find their bytes covered, or run one sync
    /// for all of them (group commit).
    ///
    /// `epoch` is the file epoch `end` belongs to: compaction syncs its new
    /// file completely, so an older epoch is always covered once replaced.
    pub(crate) fn sync_through(&self, epoch: u64, end: u64) -> Result<()> {
        self.group_commit
            .sync_through((epoch, end), || {
                let (file, covered) = {
                    let state = self.lock_state();
                    (Arc::clone(&state.file), (state.epoch, state.tail))
                };
                file.sync_data().map(|()| covered)
            })
            .map_err(|e| io_err(&self.path, "syncing", e))
    }
}

/// True when both paths name the same file now (through links or not).
fn same_path(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn read_retrying(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}
