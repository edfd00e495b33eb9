//! Online copies of a store: [`DataStore::backup_to`] and
//! [`DataStore::compact_to`].
//!
//! A backup is a byte-for-byte copy of the store file up to a committed end
//! captured when the call starts. Bytes below that end never change (the
//! file is append-only and compaction writes a new file), so the copy is
//! consistent while writers go on, without blocking them: it holds the map
//! of the file it copies and reads from it.
//!
//! Because the store only ever appends, a backup of the same store (same
//! store id) is a prefix of it, and a later backup appends only the new
//! bytes. Before appending, the backup's last committed entry is compared
//! with the store's entry at the same offset (trailer bytes, whose checksum
//! covers the value and key, and a valid checksum in both files); a backup
//! that has diverged is refused, not overwritten. Compaction gives the store
//! a new id: then the backup is replaced by a full copy, written to a
//! temporary file that is synced, verified and renamed over it. To know
//! that an older backup with another id was made from this store, each
//! backup leaves a small `<backup>.source` file naming the store's path and
//! the ids it copied.
//!
//! Crash safety: a full copy only becomes the backup by the final rename,
//! so a crash leaves the previous backup as it was. An incremental append
//! writes past the previous backup's end: a crash leaves a torn tail that
//! opening the backup cuts off, and every entry of the previous backup
//! intact (the next backup cuts the torn bytes before appending).

use std::fs::{File, TryLockError};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use mmblob_entry::Mapping;
use mmblob_entry::format::{HEADER_LEN, Header, HeaderError, TRAILER_LEN};
use tracing::{info, info_span};

use crate::compact::{CompactStats, Target, compaction_target};
use crate::error::{Error, Result};
use crate::recovery::{Ctx, walk};
use crate::store::{DataStore, io_err, new_store_id, parent_dir, sync_dir};

/// Bytes copied (and read back to verify) per system call.
const COPY_CHUNK: usize = 4 << 20;
/// First line of a `<backup>.source` file.
const SOURCE_MAGIC: &str = "mmblob-backup-source 1";

/// What [`DataStore::backup_to`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupStats {
    /// First byte offset copied (0 for a full copy, the previous backup's
    /// end for an incremental one).
    pub from: u64,
    /// End of the bytes copied: the committed end of the store when the
    /// backup started, and the length of the backup now.
    pub to: u64,
    /// True when only the bytes after an earlier backup were appended.
    pub incremental: bool,
    /// Entries in the copied range (all entries for a full copy).
    pub entries: u64,
    /// The store id of the backup (the store's id when it was copied).
    pub store_id: u64,
}

impl BackupStats {
    /// Bytes written by this backup.
    #[must_use]
    pub fn bytes_copied(&self) -> u64 {
        self.to - self.from
    }
}

/// What the store looked like when a backup began.
struct Source {
    map: Arc<Mapping>,
    tail: u64,
    store_id: u64,
    /// Device and inode of the store file.
    file_id: (u64, u64),
}

/// What is at the backup path now.
enum Existing {
    /// Nothing (or an empty file): write a full copy.
    Nothing,
    /// An earlier backup of this store: append after `end`.
    Prefix { file: File, lock: File, end: u64 },
    /// A backup of this store from before a compaction: replace it.
    Older { lock: File },
}

impl DataStore {
    /// Writes a consistent copy of the store to `path`, online: every entry
    /// whose write returned before the call is in it, nothing torn, and
    /// writers are not blocked meanwhile. The copy is an ordinary store;
    /// restoring is opening it.
    ///
    /// When `path` holds an earlier backup of this store, only the bytes
    /// written since are appended; after a compaction of the store, the
    /// backup is replaced by a full copy (via a temporary file and a
    /// rename). The copy is synced (file and directory) and read back and
    /// compared before the call returns. See the module docs for the crash
    /// analysis.
    ///
    /// # Errors
    /// Nothing at `path` is overwritten unless it is an earlier backup of
    /// this store: [`Error::SameStore`] for the store itself,
    /// [`Error::NotAFile`] for a directory, [`Error::NotAStore`] for another
    /// file, [`Error::DestinationInUse`] for another store or a backup that
    /// was written to since, [`Error::Locked`] when a writer has it open,
    /// [`Error::Io`] (for example `PermissionDenied` on a read-only path).
    pub fn backup_to(&self, path: impl AsRef<Path>) -> Result<BackupStats> {
        self.backup_with_progress(path, |_| {})
    }

    /// [`DataStore::backup_to`], calling `progress` with the number of bytes
    /// copied since its previous call.
    ///
    /// # Errors
    /// As [`DataStore::backup_to`].
    pub fn backup_with_progress(
        &self,
        path: impl AsRef<Path>,
        progress: impl Fn(u64),
    ) -> Result<BackupStats> {
        let dest = path.as_ref();
        let _span = info_span!("mmblob.backup", path = %self.path.display(), to = %dest.display())
            .entered();
        let started = Instant::now();
        let source = self.backup_source()?;
        let stats = match self.inspect_destination(dest, &source)? {
            Existing::Prefix { file, lock, end } => {
                let ctx = self.ctx(source.store_id);
                let stats = append_backup(dest, &file, end, &source, &ctx, &progress)?;
                write_source_file(dest, &self.source_path(), &[source.store_id])?;
                drop(lock);
                stats
            }
            Existing::Older { lock } => {
                let stats = self.full_backup(dest, &source, &progress)?;
                drop(lock);
                stats
            }
            Existing::Nothing => self.full_backup(dest, &source, &progress)?,
        };
        info!(
            from = stats.from,
            to = stats.to,
            incremental = stats.incremental,
            entries = stats.entries,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "backup written"
        );
        Ok(stats)
    }

    /// The map, committed end and identity of the store file right now.
    fn backup_source(&self) -> Result<Source> {
        let state = self.lock_state();
        if state.store_id == 0 {
            return Err(Error::InvalidOperation(format!(
                "{}: the store has no header yet; nothing to back up",
                self.path.display()
            )));
        }
        let meta = state
            .file
            .metadata()
            .map_err(|e| io_err(&self.path, "reading metadata of", e))?;
        Ok(Source {
            map: Arc::clone(&state.map),
            tail: state.tail,
            store_id: state.store_id,
            file_id: (meta.dev(), meta.ino()),
        })
    }

    /// The store's path as recorded in a backup's `.source` file.
    fn source_path(&self) -> PathBuf {
        compaction_target(&self.path)
    }

    /// Decides what to do with `dest`, refusing anything that is not an
    /// earlier backup of this store.
    fn inspect_destination(&self, dest: &Path, source: &Source) -> Result<Existing> {
        let meta = match std::fs::metadata(dest) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Nothing),
            Err(e) => return Err(io_err(dest, "inspecting", e)),
        };
        if !meta.is_file() {
            return Err(Error::NotAFile {
                path: dest.to_path_buf(),
            });
        }
        if (meta.dev(), meta.ino()) == source.file_id
            || compaction_target(dest) == self.source_path()
        {
            return Err(Error::SameStore {
                path: self.path.clone(),
            });
        }
        refuse_read_only(dest, &meta, "file")?;
        // Opened for writing even when nothing will be appended: a path we
        // may not write is refused here, before anything happens.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dest)
            .map_err(|e| io_err(dest, "opening the backup", e))?;
        let lock = lock_destination(dest)?;
        let len = file
            .metadata()
            .map_err(|e| io_err(dest, "reading metadata of", e))?
            .len();
        if len == 0 {
            return Ok(Existing::Older { lock });
        }
        let mut head = vec![0u8; len.min(HEADER_LEN) as usize];
        file.read_exact_at(&mut head, 0)
            .map_err(|e| io_err(dest, "reading header of", e))?;
        let header = match Header::decode(&head) {
            Ok(header) => header,
            Err(HeaderError::NotMagic) => {
                return Err(Error::NotAStore {
                    path: dest.to_path_buf(),
                    reason: "it does not start with the mmblob magic bytes; \
                             a backup never replaces other files"
                        .into(),
                });
            }
            Err(e) => {
                return Err(in_use(
                    dest,
                    format!("holds a damaged or unknown mmblob header ({e:?})"),
                ));
            }
        };
        if header.store_id != source.store_id {
            if self.made_from_this_store(dest, header.store_id) {
                return Ok(Existing::Older { lock });
            }
            return Err(in_use(
                dest,
                format!(
                    "holds another store (id {:#018x}, not a backup of this one)",
                    header.store_id
                ),
            ));
        }
        let ctx = self.ctx(source.store_id);
        let end = ctx
            .find_tail(&file, len, HEADER_LEN)
            .map_err(|e| io_err(dest, "recovering the backup", e))?;
        if !boundary_matches(&file, end, source, &ctx) {
            return Err(in_use(
                dest,
                format!(
                    "is a copy of this store that differs from it at or before offset {end} \
                     (written to since it was made)"
                ),
            ));
        }
        Ok(Existing::Prefix { file, lock, end })
    }

    /// True when the `.source` file next to `dest` says the backup with id
    /// `id` was made from this store.
    fn made_from_this_store(&self, dest: &Path, id: u64) -> bool {
        read_source_file(dest)
            .is_some_and(|(path, ids)| path == self.source_path() && ids.contains(&id))
    }

    /// Copies the whole store to a temporary file next to `dest`, verifies
    /// it and renames it over `dest`.
    fn full_backup(
        &self,
        dest: &Path,
        source: &Source,
        progress: &impl Fn(u64),
    ) -> Result<BackupStats> {
        check_directory_writable(dest)?;
        let temp = temp_path(dest, "backup");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&temp)
            .map_err(|e| io_err(&temp, "creating", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(in_use(dest, "another backup to it is running".into()));
            }
            Err(TryLockError::Error(e)) => return Err(io_err(&temp, "locking", e)),
        }
        let result = (|| -> Result<()> {
            file.set_len(0)
                .map_err(|e| io_err(&temp, "truncating", e))?;
            copy_range(&file, &temp, source, 0, progress)?;
            file.sync_all().map_err(|e| io_err(&temp, "syncing", e))?;
            verify_copy(&file, &temp, source, 0, &self.ctx(source.store_id))?;
            let previous = read_header_id(dest);
            let ids: Vec<u64> = [Some(source.store_id), previous]
                .into_iter()
                .flatten()
                .collect();
            write_source_file(dest, &self.source_path(), &ids)?;
            std::fs::rename(&temp, dest).map_err(|e| io_err(dest, "renaming the backup to", e))?;
            sync_dir(&parent_dir(dest)).map_err(|e| io_err(dest, "syncing the directory of", e))?;
            write_source_file(dest, &self.source_path(), &[source.store_id])
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result?;
        Ok(BackupStats {
            from: 0,
            to: source.tail,
            incremental: false,
            entries: count_entries(source, HEADER_LEN, &self.ctx(source.store_id)),
            store_id: source.store_id,
        })
    }

    /// Writes the live entries into a new, compacted store at `path` and
    /// leaves this store alone (it may be read-only). The new store has a
    /// new id. `path` must not exist (or be empty); the new file appears
    /// there complete and synced, or not at all.
    ///
    /// # Errors
    /// [`Error::DestinationInUse`] when `path` exists, [`Error::SameStore`],
    /// [`Error::NotAFile`] for a directory, [`Error::Corrupt`] for a live
    /// value that fails its checksum, [`Error::Io`].
    pub fn compact_to(&self, path: impl AsRef<Path>) -> Result<CompactStats> {
        self.compact_to_with_progress(path, |_| {})
    }

    /// [`DataStore::compact_to`], calling `progress` with the number of live
    /// bytes copied since its previous call.
    ///
    /// # Errors
    /// As [`DataStore::compact_to`].
    pub fn compact_to_with_progress(
        &self,
        path: impl AsRef<Path>,
        progress: impl Fn(u64),
    ) -> Result<CompactStats> {
        let dest = path.as_ref();
        let _span =
            info_span!("mmblob.compact_to", path = %self.path.display(), to = %dest.display())
                .entered();
        match std::fs::metadata(dest) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(dest, "inspecting", e)),
            Ok(meta) if !meta.is_file() => {
                return Err(Error::NotAFile {
                    path: dest.to_path_buf(),
                });
            }
            Ok(_) if compaction_target(dest) == self.source_path() => {
                return Err(Error::SameStore {
                    path: self.path.clone(),
                });
            }
            Ok(meta) if meta.len() > 0 => {
                return Err(in_use(dest, "already exists".into()));
            }
            Ok(_) => {}
        }
        let (map, live) = self.index.snapshot_in_file_order();
        let live: Vec<u64> = live.iter().collect();
        let bytes = map.readable();
        let before = bytes.len() as u64;
        let ctx = self.ctx(map.store_id());
        let mut total = 0u64;
        walk(bytes, before, HEADER_LEN, &ctx, |_| total += 1);
        check_directory_writable(dest)?;
        let temp = temp_path(dest, "compacting");
        let result = (|| -> Result<u64> {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&temp)
                .map_err(|e| io_err(&temp, "creating", e))?;
            let new_id = new_store_id();
            file.write_all_at(&Header { store_id: new_id }.encode(), 0)
                .map_err(|e| io_err(&temp, "writing header of", e))?;
            let target = Target {
                file: &file,
                path: &temp,
                store_id: new_id,
            };
            let (tail, _tables) = self.copy_entries(&ctx, &target, bytes, &live, &progress)?;
            file.sync_all().map_err(|e| io_err(&temp, "syncing", e))?;
            // A link never replaces: if something appeared at `dest`
            // meanwhile, it stays and we fail.
            if std::fs::metadata(dest).is_ok_and(|m| m.len() == 0) {
                let _ = std::fs::remove_file(dest);
            }
            std::fs::hard_link(&temp, dest).map_err(|e| io_err(dest, "creating", e))?;
            sync_dir(&parent_dir(dest)).map_err(|e| io_err(dest, "syncing the directory of", e))?;
            Ok(tail)
        })();
        let _ = std::fs::remove_file(&temp);
        let tail = result?;
        let kept = live.len() as u64;
        Ok(CompactStats {
            bytes_before: before,
            bytes_after: tail,
            entries_kept: kept,
            entries_dropped: total.saturating_sub(kept),
        })
    }
}

fn in_use(path: &Path, reason: String) -> Error {
    Error::DestinationInUse {
        path: path.to_path_buf(),
        reason,
    }
}

/// Refuses a file or directory without write permission, even for a user
/// (root) whom the system would let write: a read-only backup is one its
/// owner wants left alone.
fn refuse_read_only(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<()> {
    if !meta.permissions().readonly() {
        return Ok(());
    }
    Err(Error::io(
        format!("writing {}", path.display()),
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("the {what} is read-only; make it writable (chmod u+w) to write there"),
        ),
    ))
}

/// Refuses to create files next to `dest` in a read-only directory.
fn check_directory_writable(dest: &Path) -> Result<()> {
    let dir = parent_dir(dest);
    match std::fs::metadata(&dir) {
        Ok(meta) => refuse_read_only(&dir, &meta, "directory"),
        Err(e) => Err(io_err(&dir, "inspecting", e)),
    }
}

/// `.<name>.<what>` next to `dest`.
fn temp_path(dest: &Path, what: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map_or_else(|| "backup".into(), |n| n.to_string_lossy().into_owned());
    parent_dir(dest).join(format!(".{name}.{what}"))
}

/// Takes the write lock of the store at `dest`, as a writable open would:
/// nobody may write to it while it is extended or replaced.
fn lock_destination(dest: &Path) -> Result<File> {
    let lock = File::open(dest).map_err(|e| io_err(dest, "opening for locking", e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(TryLockError::WouldBlock) => Err(Error::Locked {
            path: dest.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(io_err(dest, "locking", e)),
    }
}

/// The store id in the header of the file at `path`, if it is a store.
fn read_header_id(path: &Path) -> Option<u64> {
    let mut head = [0u8; HEADER_LEN as usize];
    File::open(path).ok()?.read_exact_at(&mut head, 0).ok()?;
    Header::decode(&head).ok().map(|h| h.store_id)
}

/// True when the backup's committed end `end` is also an entry end in the
/// store with the same trailer, and that entry's checksum holds there.
fn boundary_matches(file: &File, end: u64, source: &Source, ctx: &Ctx) -> bool {
    if end > source.tail {
        return false;
    }
    if end == HEADER_LEN {
        return true;
    }
    let mut ours = [0u8; TRAILER_LEN as usize];
    if file.read_exact_at(&mut ours, end - TRAILER_LEN).is_err() {
        return false;
    }
    let bytes = source.map.readable();
    let Some(theirs) = source.map.bytes(end - TRAILER_LEN..end) else {
        return false;
    };
    if ours != theirs {
        return false;
    }
    // `find_tail` checked the backup's entry; check the store's.
    let Some(found) = ctx.structure(bytes, end) else {
        return false;
    };
    matches!(ctx.checksums(bytes, &found), Ok((stored, computed)) if stored == computed)
}

/// Appends the store's bytes after `end` to the backup `file`.
fn append_backup(
    dest: &Path,
    file: &File,
    end: u64,
    source: &Source,
    ctx: &Ctx,
    progress: &impl Fn(u64),
) -> Result<BackupStats> {
    let len = file
        .metadata()
        .map_err(|e| io_err(dest, "reading metadata of", e))?
        .len();
    if len > end {
        // A torn tail left by an interrupted backup.
        file.set_len(end)
            .map_err(|e| io_err(dest, "cutting the torn tail of", e))?;
    }
    copy_range(file, dest, source, end, progress)?;
    file.sync_data().map_err(|e| io_err(dest, "syncing", e))?;
    verify_copy(file, dest, source, end, ctx)?;
    Ok(BackupStats {
        from: end,
        to: source.tail,
        incremental: true,
        entries: count_entries(source, end, ctx),
        store_id: source.store_id,
    })
}

/// Copies `from..source.tail` of the store to the same offsets of `file`.
fn copy_range(
    file: &File,
    path: &Path,
    source: &Source,
    from: u64,
    progress: &impl Fn(u64),
) -> Result<()> {
    let mut at = from;
    while at < source.tail {
        let upto = source.tail.min(at + COPY_CHUNK as u64);
        let chunk = source
            .map
            .bytes(at..upto)
            .ok_or_else(|| Error::InvalidOperation("the store map shrank".into()))?;
        file.write_all_at(chunk, at)
            .map_err(|e| io_err(path, "writing the backup", e))?;
        progress(upto - at);
        at = upto;
    }
    Ok(())
}

/// Reads `from..source.tail` of the synced copy back and compares it with
/// the store, then checks that recovery finds the copy's end where the
/// store's was.
fn verify_copy(file: &File, path: &Path, source: &Source, from: u64, ctx: &Ctx) -> Result<()> {
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut at = from;
    while at < source.tail {
        let upto = source.tail.min(at + COPY_CHUNK as u64);
        let got = &mut buf[..(upto - at) as usize];
        file.read_exact_at(got, at)
            .map_err(|e| io_err(path, "reading back the backup", e))?;
        if source.map.bytes(at..upto) != Some(&*got) {
            return Err(Error::Corrupt {
                offset: at,
                reason: format!(
                    "the backup {} does not read back as written",
                    path.display()
                ),
            });
        }
        at = upto;
    }
    let len = file
        .metadata()
        .map_err(|e| io_err(path, "reading metadata of", e))?
        .len();
    let end = ctx
        .find_tail(file, len, HEADER_LEN)
        .map_err(|e| io_err(path, "checking the backup", e))?;
    if len != source.tail || end != source.tail {
        return Err(Error::Corrupt {
            offset: end,
            reason: format!(
                "the backup {} ends at {end} ({len} bytes), not at {}",
                path.display(),
                source.tail
            ),
        });
    }
    Ok(())
}

/// Entries ending in `from..=source.tail`.
fn count_entries(source: &Source, from: u64, ctx: &Ctx) -> u64 {
    let mut n = 0u64;
    walk(source.map.readable(), source.tail, from, ctx, |_| n += 1);
    n
}

fn source_file_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".source");
    PathBuf::from(name)
}

/// Records, next to the backup, which store it was made from and the ids
/// of the copies, replacing the file atomically.
fn write_source_file(dest: &Path, store: &Path, ids: &[u64]) -> Result<()> {
    let path = source_file_path(dest);
    let temp = temp_path(&path, "writing");
    let mut text = format!("{SOURCE_MAGIC}\n");
    for id in ids {
        text.push_str(&format!("{id:016x} "));
    }
    text.push('\n');
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(store.as_os_str().as_bytes());
    let result = (|| {
        let file = File::create(&temp)?;
        file.write_all_at(&bytes, 0)?;
        file.sync_all()?;
        std::fs::rename(&temp, &path)?;
        sync_dir(&parent_dir(&path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(|e| io_err(&path, "writing", e))
}

/// The store path and copy ids a `.source` file records.
fn read_source_file(dest: &Path) -> Option<(PathBuf, Vec<u64>)> {
    let mut bytes = Vec::new();
    File::open(source_file_path(dest))
        .ok()?
        .take(1 << 16)
        .read_to_end(&mut bytes)
        .ok()?;
    let mut lines = bytes.splitn(3, |&b| b == b'\n');
    if lines.next()? != SOURCE_MAGIC.as_bytes() {
        return None;
    }
    let ids = std::str::from_utf8(lines.next()?)
        .ok()?
        .split_whitespace()
        .map(|id| u64::from_str_radix(id, 16).ok())
        .collect::<Option<Vec<u64>>>()?;
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(lines.next()?));
    Some((path, ids))
}
