//! Creating and extending a local replica from the manifest.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path as FsPath, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mmblob_entry::format::{HEADER_LEN, Header};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};
use tracing::{Instrument, debug, info, info_span};
use xxhash_rust::xxh3::Xxh3;

use crate::error::{RemoteError, Result};
use crate::layout;
use crate::manifest::{Manifest, hex64};
use crate::remote::{Progress, ProgressFn, parse_prefix, read_manifest};
use crate::verify::{check_entries, check_header};

/// How often a pull starts over when a push removed an object it needed.
const ATTEMPTS: usize = 3;
/// Write buffer of downloads.
const WRITE_BUFFER: usize = 1 << 20;

/// Settings of a pull.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct PullOptions {
    /// Called as bytes are downloaded.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions").finish_non_exhaustive()
    }
}

impl PullOptions {
    /// Sets the progress callback.
    #[must_use]
    pub fn progress(mut self, progress: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(std::sync::Arc::new(progress));
        self
    }
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullStats {
    /// Store id (generation) of the replica now.
    pub store_id: u64,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// Entries whose checksum was checked before they became visible.
    pub entries_checked: u64,
    /// Length of the replica before the pull (0 when there was none or it
    /// was replaced).
    pub previous_end: u64,
    /// Length of the replica now: the manifest's end.
    pub end: u64,
    /// True when the replica was written anew (first pull, or the remote
    /// store was compacted into a new generation).
    pub replaced: bool,
    /// Wall time of the pull.
    pub elapsed: Duration,
}

/// Brings the replica at `dest` up to the manifest under `prefix`.
/// Blocking; see [`pull_async`].
///
/// # Errors
/// See [`pull_async`]; also [`RemoteError::InsideRuntime`] when called from
/// inside an async runtime.
pub fn pull(
    remote: &dyn ObjectStore,
    prefix: &str,
    dest: impl AsRef<FsPath>,
    options: &PullOptions,
) -> Result<PullStats> {
    crate::remote::block_on("pull", pull_async(remote, prefix, dest.as_ref(), options))
}

/// Creates or extends the replica at `dest` from the manifest under
/// `prefix`: only the bytes past the replica's end are downloaded, into a
/// staging file; every entry in them is checked (structure, key hash,
/// checksum) and each whole segment against the manifest's xxh3 before the
/// bytes are appended to the replica. A replica of an older generation (the
/// writer compacted) is replaced atomically (temporary file, then rename).
///
/// The replica is an ordinary store: open it with
/// `OpenOptions::new().read_only(true)`, and `refresh()` it after a pull.
/// While a pull writes, it holds the replica's write lock, so no writer can
/// open it.
///
/// # Errors
/// [`RemoteError::NoManifest`] when nothing was pushed;
/// [`RemoteError::Store`] / [`RemoteError::AccessDenied`] when the object
/// store fails; [`RemoteError::BadSegment`] / [`RemoteError::CorruptEntry`]
/// when downloaded bytes fail a check; [`RemoteError::NotAReplica`] when
/// `dest` is another file or store; [`RemoteError::Diverged`] when the
/// replica is longer than the remote copy; [`RemoteError::Locked`] when
/// another process writes the replica. On any error the replica is left
/// as it was.
pub async fn pull_async(
    remote: &dyn ObjectStore,
    prefix: &str,
    dest: &FsPath,
    options: &PullOptions,
) -> Result<PullStats> {
    let prefix = parse_prefix(prefix)?;
    let span = info_span!("mmblob.pull", prefix = %prefix, dest = %dest.display());
    async {
        let mut attempt = 1;
        loop {
            match pull_once(remote, &prefix, dest, options).await {
                Err(err) if err.is_object_missing() && attempt < ATTEMPTS => {
                    debug!(error = %err, "a push replaced what the manifest named; reading it again");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
    .instrument(span)
    .await
}

/// What is at the destination.
enum Local {
    Missing,
    Store { store_id: u64, len: u64 },
}

fn inspect(dest: &FsPath, location: &str) -> Result<Local> {
    let not_replica = |reason: String| RemoteError::NotAReplica {
        path: dest.to_path_buf(),
        location: location.to_owned(),
        reason,
    };
    let meta = match std::fs::metadata(dest) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Local::Missing),
        Err(e) => return Err(RemoteError::io("inspecting", dest, e)),
    };
    if !meta.is_file() {
        return Err(not_replica("not a regular file".into()));
    }
    if meta.len() == 0 {
        return Ok(Local::Missing);
    }
    let file = File::open(dest).map_err(|e| RemoteError::io("opening", dest, e))?;
    let mut bytes = [0u8; HEADER_LEN as usize];
    if meta.len() < HEADER_LEN || file.read_exact_at(&mut bytes, 0).is_err() {
        return Err(not_replica("not an mmblob store: too short".into()));
    }
    let header =
        Header::decode(&bytes).map_err(|e| not_replica(format!("not an mmblob store: {e:?}")))?;
    Ok(Local::Store {
        store_id: header.store_id,
        len: meta.len(),
    })
}

async fn pull_once(
    remote: &dyn ObjectStore,
    prefix: &Path,
    dest: &FsPath,
    options: &PullOptions,
) -> Result<PullStats> {
    let started = Instant::now();
    let manifest_location = layout::manifest(prefix).to_string();
    let manifest = read_manifest(remote, prefix)
        .await?
        .ok_or_else(|| RemoteError::NoManifest {
            location: manifest_location.clone(),
        })?;
    let id = manifest.id().map_err(|reason| RemoteError::BadManifest {
        location: manifest_location.clone(),
        reason,
    })?;
    let end = manifest.end;
    let location = prefix.to_string();
    match inspect(dest, &location)? {
        Local::Store { store_id, len } if store_id == id => {
            if len == end {
                debug!(end, "replica is up to date");
                return Ok(PullStats {
                    store_id: id,
                    downloaded_bytes: 0,
                    entries_checked: 0,
                    previous_end: len,
                    end,
                    replaced: false,
                    elapsed: started.elapsed(),
                });
            }
            if len > end {
                return Err(RemoteError::Diverged {
                    store_id: id,
                    local_end: len,
                    remote_end: end,
                });
            }
            extend(remote, prefix, dest, &manifest, len, options, started).await
        }
        Local::Store { store_id, .. } if !manifest.knows(store_id) => {
            Err(RemoteError::NotAReplica {
                path: dest.to_path_buf(),
                location,
                reason: format!(
                    "it holds store {store_id:016x}, which the remote copy ({id:016x}) does not \
                 descend from"
                ),
            })
        }
        _ => replace(remote, prefix, dest, &manifest, options, started).await,
    }
}

/// Appends the verified bytes `from..manifest.end` to the replica.
async fn extend(
    remote: &dyn ObjectStore,
    prefix: &Path,
    dest: &FsPath,
    manifest: &Manifest,
    from: u64,
    options: &PullOptions,
    started: Instant,
) -> Result<PullStats> {
    let id = manifest.id().unwrap_or_default();
    let replica = std::fs::OpenOptions::new()
        .append(true)
        .open(dest)
        .map_err(|e| RemoteError::io("opening", dest, e))?;
    lock(&replica, dest)?;
    // The length may have changed before the lock was taken.
    let len = replica
        .metadata()
        .map_err(|e| RemoteError::io("inspecting", dest, e))?
        .len();
    if len != from {
        return Err(RemoteError::Locked {
            path: dest.to_path_buf(),
        });
    }
    let staging = staging_file(dest)?;
    let downloaded = download(
        remote,
        prefix,
        manifest,
        from,
        staging.as_file(),
        staging.path(),
        options,
    )
    .await?;
    let checked = check_entries(
        staging.as_file(),
        staging.path(),
        from,
        from,
        manifest.end,
        id,
    )?;
    // Verified: make the bytes part of the replica.
    let mut reader = staging
        .reopen()
        .map_err(|e| RemoteError::io("reopening", staging.path(), e))?;
    let mut writer = &replica;
    let copied = std::io::copy(&mut reader, &mut writer)
        .map_err(|e| RemoteError::io("appending to", dest, e))?;
    if copied != manifest.end - from {
        // Put the replica back as it was.
        let _ = replica.set_len(from);
        return Err(RemoteError::io(
            "appending to",
            dest,
            std::io::Error::other(format!("copied {copied} of {} bytes", manifest.end - from)),
        ));
    }
    replica
        .sync_data()
        .map_err(|e| RemoteError::io("syncing", dest, e))?;
    info!(
        from,
        end = manifest.end,
        entries = checked,
        "replica extended"
    );
    Ok(PullStats {
        store_id: id,
        downloaded_bytes: downloaded,
        entries_checked: checked,
        previous_end: from,
        end: manifest.end,
        replaced: false,
        elapsed: started.elapsed(),
    })
}

/// Writes the whole generation into a temporary file next to `dest`,
/// checks it and renames it over `dest`.
async fn replace(
    remote: &dyn ObjectStore,
    prefix: &Path,
    dest: &FsPath,
    manifest: &Manifest,
    options: &PullOptions,
    started: Instant,
) -> Result<PullStats> {
    let id = manifest.id().unwrap_or_default();
    // Hold the old replica's lock so no writer opens it meanwhile.
    let old = File::open(dest).ok();
    if let Some(old) = &old {
        lock(old, dest)?;
    }
    let staging = staging_file(dest)?;
    lock(staging.as_file(), staging.path())?;
    let downloaded = download(
        remote,
        prefix,
        manifest,
        0,
        staging.as_file(),
        staging.path(),
        options,
    )
    .await?;
    check_header(staging.as_file(), staging.path(), id)?;
    let checked = check_entries(
        staging.as_file(),
        staging.path(),
        0,
        HEADER_LEN,
        manifest.end,
        id,
    )?;
    // Readable like any store file (a temporary file starts private).
    staging
        .as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(|e| RemoteError::io("setting permissions of", staging.path(), e))?;
    staging
        .as_file()
        .sync_all()
        .map_err(|e| RemoteError::io("syncing", staging.path(), e))?;
    let temp_path = staging.path().to_path_buf();
    staging
        .persist(dest)
        .map_err(|e| RemoteError::io("renaming into place", temp_path, e.error))?;
    if let Ok(dir) = File::open(parent(dest)) {
        let _ = dir.sync_all();
    }
    info!(end = manifest.end, entries = checked, "replica written");
    Ok(PullStats {
        store_id: id,
        downloaded_bytes: downloaded,
        entries_checked: checked,
        previous_end: 0,
        end: manifest.end,
        replaced: true,
        elapsed: started.elapsed(),
    })
}

fn parent(path: &FsPath) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn staging_file(dest: &FsPath) -> Result<tempfile::NamedTempFile> {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "replica".into());
    let dir = parent(dest);
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".pull")
        .tempfile_in(&dir)
        .map_err(|e| RemoteError::io("creating a staging file in", dir, e))
}

fn lock(file: &File, path: &FsPath) -> Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(RemoteError::Locked {
            path: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(RemoteError::io("locking", path, e)),
    }
}

/// Downloads bytes `from..manifest.end` into `out` (which holds them from
/// its offset 0 on). Whole segments are checked against their xxh3.
async fn download(
    remote: &dyn ObjectStore,
    prefix: &Path,
    manifest: &Manifest,
    from: u64,
    out: &File,
    out_path: &FsPath,
    options: &PullOptions,
) -> Result<u64> {
    let id = manifest.id().unwrap_or_default();
    let total = manifest.end - from;
    let mut done = 0;
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, out);
    for segment in manifest.segments.iter().filter(|s| s.end > from) {
        let location = layout::segment(prefix, id, &segment.object);
        let whole = from <= segment.start;
        let got = if whole {
            remote.get(&location).await
        } else {
            remote
                .get_opts(
                    &location,
                    GetOptions {
                        range: Some(GetRange::Bounded(
                            from - segment.start..segment.end - segment.start,
                        )),
                        ..GetOptions::default()
                    },
                )
                .await
        }
        .map_err(|e| RemoteError::store("downloading", &location, e))?;
        let expected = segment.end - segment.start.max(from);
        let mut hasher = Xxh3::new();
        let mut received = 0u64;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| RemoteError::store("downloading", &location, e))?;
            received += chunk.len() as u64;
            if received > expected {
                return Err(RemoteError::BadSegment {
                    location: location.to_string(),
                    reason: format!("more than the {expected} bytes expected"),
                });
            }
            if whole {
                hasher.update(&chunk);
            }
            writer
                .write_all(&chunk)
                .map_err(|e| RemoteError::io("writing", out_path, e))?;
            done += chunk.len() as u64;
            if let Some(progress) = &options.progress {
                progress(Progress { done, total });
            }
        }
        if received != expected {
            return Err(RemoteError::BadSegment {
                location: location.to_string(),
                reason: format!("{received} bytes, expected {expected}"),
            });
        }
        if whole && hex64(hasher.digest()) != segment.xxh3 {
            return Err(RemoteError::BadSegment {
                location: location.to_string(),
                reason: format!(
                    "xxh3 {} differs from the manifest's {}",
                    hex64(hasher.digest()),
                    segment.xxh3
                ),
            });
        }
    }
    writer
        .flush()
        .map_err(|e| RemoteError::io("writing", out_path, e))?;
    Ok(done)
}
