//! Shipping the committed bytes of a store to the object store.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt, TryStreamExt};
use mmblob_engine::DataStore;
use mmblob_entry::format::HEADER_LEN;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, PutPayload};
use tracing::{Instrument, debug, info, info_span, warn};
use xxhash_rust::xxh3::Xxh3;

use crate::error::{RemoteError, Result};
use crate::layout;
use crate::manifest::{Generation, LINEAGE_LIMIT, Manifest, Segment, hex64, parse_id};
use crate::remote::{Progress, ProgressFn, parse_prefix, read_manifest};
use crate::source::Source;

/// Settings of a push; [`PushOptions::default`] suits most stores.
#[derive(Clone)]
#[non_exhaustive]
pub struct PushOptions {
    /// Ranges longer than this are uploaded as multipart uploads of parts
    /// of this size (at least 5 MiB, as S3 requires). Default 16 MiB.
    pub part_size: usize,
    /// Parts uploaded at the same time; memory used is at most
    /// `part_size * concurrency`. Default 4.
    pub concurrency: usize,
    /// Older generations (stores replaced by a compaction) kept next to
    /// the current one; older ones are deleted. Default 1.
    pub retain_generations: usize,
    /// When a generation reaches this many segments, the newest half is
    /// merged into one by uploading its bytes again. Default 64.
    pub max_segments: usize,
    /// Called as bytes are uploaded.
    pub progress: Option<ProgressFn>,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            part_size: 16 << 20,
            concurrency: 4,
            retain_generations: 1,
            max_segments: 64,
            progress: None,
        }
    }
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("part_size", &self.part_size)
            .field("concurrency", &self.concurrency)
            .field("retain_generations", &self.retain_generations)
            .field("max_segments", &self.max_segments)
            .finish_non_exhaustive()
    }
}

impl PushOptions {
    /// Sets [`part_size`](Self::part_size) (raised to 5 MiB at least).
    #[must_use]
    pub fn part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes.max(5 << 20);
        self
    }

    /// Sets [`concurrency`](Self::concurrency) (at least 1).
    #[must_use]
    pub fn concurrency(mut self, parts: usize) -> Self {
        self.concurrency = parts.max(1);
        self
    }

    /// Sets [`retain_generations`](Self::retain_generations).
    #[must_use]
    pub fn retain_generations(mut self, generations: usize) -> Self {
        self.retain_generations = generations;
        self
    }

    /// Sets [`max_segments`](Self::max_segments) (at least 2).
    #[must_use]
    pub fn max_segments(mut self, segments: usize) -> Self {
        self.max_segments = segments.max(2);
        self
    }

    /// Sets the progress callback.
    #[must_use]
    pub fn progress(mut self, progress: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PushStats {
    /// Store id (generation) now named by the manifest.
    pub store_id: u64,
    /// True when this push started a new generation (first push, or the
    /// store was compacted since the last one).
    pub new_generation: bool,
    /// Bytes uploaded (0 when the remote was already up to date).
    pub uploaded_bytes: u64,
    /// The remote copy's end before the push (0 for a new generation).
    pub previous_end: u64,
    /// The remote copy's end now: the store's committed end at push time.
    pub end: u64,
    /// Segment objects of the current generation.
    pub segments: usize,
    /// Objects deleted (orphans of failed pushes, merged segments,
    /// generations past the retention).
    pub removed_objects: usize,
    /// Wall time of the push.
    pub elapsed: Duration,
}

/// Uploads the bytes committed to `store` since the last push to `prefix`
/// of `remote`, then replaces the manifest. Blocking; see [`push_async`].
///
/// # Errors
/// See [`push_async`]; also [`RemoteError::InsideRuntime`] when called from
/// inside an async runtime.
pub fn push(
    store: &DataStore,
    remote: &dyn ObjectStore,
    prefix: &str,
    options: &PushOptions,
) -> Result<PushStats> {
    crate::remote::block_on("push", push_async(store, remote, prefix, options))
}

/// Uploads the bytes committed to `store` since the last push as one new
/// segment object under `<prefix>/<store id>/`, then replaces
/// `<prefix>/manifest.json`.
///
/// Segments are written first and the manifest last, so a failure or a
/// crash at any point leaves the previous manifest, and everything it
/// names, intact; objects a failed push left behind are deleted by the next
/// one. A compacted store (new store id) starts a new generation with a
/// full upload. Only bytes up to the store's committed end are read.
///
/// Only one pusher may push to a prefix at a time.
///
/// # Errors
/// [`RemoteError::Store`] / [`RemoteError::AccessDenied`] when the object
/// store fails or refuses; [`RemoteError::Diverged`] when the store has the
/// id of the remote copy but does not extend it; [`RemoteError::BadManifest`]
/// for a manifest this build cannot read; [`RemoteError::Io`] when the store
/// file cannot be read. The local store is never changed.
pub async fn push_async(
    store: &DataStore,
    remote: &dyn ObjectStore,
    prefix: &str,
    options: &PushOptions,
) -> Result<PushStats> {
    let prefix = parse_prefix(prefix)?;
    let span = info_span!("mmblob.push", prefix = %prefix);
    push_inner(store, remote, &prefix, options)
        .instrument(span)
        .await
}

async fn push_inner(
    store: &DataStore,
    remote: &dyn ObjectStore,
    prefix: &Path,
    options: &PushOptions,
) -> Result<PushStats> {
    let started = Instant::now();
    let source = Source::snapshot(store)?;
    // One round trip for both: the manifest, and the listing that tells
    // what a failed push left behind (deleted once the new manifest is in).
    let (old, listing) = futures::join!(read_manifest(remote, prefix), list_all(remote, prefix));
    let old = old?;
    let id = source.store_id;
    let end = source.end;
    if id == 0 || end < HEADER_LEN {
        // A read-only handle of a file that was still empty: nothing to ship.
        return Err(RemoteError::EmptyStore {
            path: source.path.clone(),
        });
    }

    // What stays and where the new segment starts.
    let mut new_generation = true;
    let mut segments = Vec::new();
    let mut retained = Vec::new();
    let mut lineage = Vec::new();
    let mut previous_end = 0;
    let mut start = 0;
    if let Some(old) = &old {
        let old_id = old.id().map_err(|reason| RemoteError::BadManifest {
            location: layout::manifest(prefix).to_string(),
            reason,
        })?;
        if old_id == id {
            if end < old.end || source.trailer_hex(old.end)? != old.tail_trailer {
                return Err(RemoteError::Diverged {
                    store_id: id,
                    local_end: end,
                    remote_end: old.end,
                });
            }
            new_generation = false;
            previous_end = old.end;
            retained = old.retained.clone();
            lineage = old.lineage.clone();
            if end == old.end {
                debug!(end, "remote copy is up to date");
                return Ok(PushStats {
                    store_id: id,
                    new_generation: false,
                    uploaded_bytes: 0,
                    previous_end,
                    end,
                    segments: old.segments.len(),
                    removed_objects: 0,
                    elapsed: started.elapsed(),
                });
            }
            segments = old.segments.clone();
            start = old.end;
            if segments.len() + 1 > options.max_segments.max(2) {
                let keep = segments.len() / 2;
                start = segments[keep].start;
                segments.truncate(keep);
                info!(from = start, "merging the newest segments into one");
            }
        } else {
            retained.push(Generation {
                store_id: old.store_id.clone(),
                end: old.end,
                segments: old.segments.clone(),
            });
            retained.extend(
                old.retained
                    .iter()
                    .filter(|g| parse_id(&g.store_id) != Some(id))
                    .cloned(),
            );
            lineage.push(old.store_id.clone());
            lineage.extend(old.lineage.iter().cloned());
            lineage.retain(|g| parse_id(g) != Some(id));
            lineage.truncate(LINEAGE_LIMIT);
        }
    }
    retained.truncate(options.retain_generations);
    if new_generation {
        info!(store_id = %layout::generation_name(id), end, "starting a new generation");
    }

    let mut uploaded = 0;
    if end > start {
        let name = layout::segment_name(start, end);
        let location = layout::segment(prefix, id, &name);
        let xxh3 = upload(remote, &location, &source, start, end, options).await?;
        uploaded = end - start;
        segments.push(Segment {
            start,
            end,
            object: name,
            xxh3: hex64(xxh3),
        });
    }
    let manifest = Manifest {
        store_id: layout::generation_name(id),
        end,
        tail_trailer: source.trailer_hex(end)?,
        segments,
        retained,
        lineage,
        pushed_at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let manifest_path = layout::manifest(prefix);
    remote
        .put(&manifest_path, PutPayload::from(manifest.encode()))
        .await
        .map_err(|e| RemoteError::store("writing", &manifest_path, e))?;
    info!(
        uploaded,
        end,
        segments = manifest.segments.len(),
        "manifest replaced"
    );

    // The new manifest is in place: what it does not name can go.
    let removed = match remove_unnamed(remote, prefix, &manifest, listing).await {
        Ok(n) => n,
        Err(err) => {
            warn!(error = %err, "could not remove stale objects; the next push retries");
            0
        }
    };
    Ok(PushStats {
        store_id: id,
        new_generation,
        uploaded_bytes: uploaded,
        previous_end,
        end: manifest.end,
        segments: manifest.segments.len(),
        removed_objects: removed,
        elapsed: started.elapsed(),
    })
}

/// Uploads bytes `start..end` of `source` to `location`; returns their xxh3-64.
async fn upload(
    remote: &dyn ObjectStore,
    location: &Path,
    source: &Source,
    start: u64,
    end: u64,
    options: &PushOptions,
) -> Result<u64> {
    let total = end - start;
    let part = options.part_size.max(5 << 20) as u64;
    let report = |done: u64| {
        if let Some(progress) = &options.progress {
            progress(Progress { done, total });
        }
    };
    let mut hasher = Xxh3::new();
    if total <= part {
        let mut buf = vec![0u8; total as usize];
        source.read_at(&mut buf, start)?;
        hasher.update(&buf);
        remote
            .put(location, PutPayload::from(buf))
            .await
            .map_err(|e| RemoteError::store("uploading", location, e))?;
        report(total);
        return Ok(hasher.digest());
    }
    let mut upload = remote
        .put_multipart(location)
        .await
        .map_err(|e| RemoteError::store("starting the upload of", location, e))?;
    let mut in_flight = FuturesUnordered::new();
    let mut done = 0;
    let mut offset = start;
    let outcome: Result<()> = async {
        while offset < end {
            let n = (end - offset).min(part);
            let mut buf = vec![0u8; n as usize];
            source.read_at(&mut buf, offset)?;
            hasher.update(&buf);
            offset += n;
            while in_flight.len() >= options.concurrency.max(1) {
                if let Some(sent) = in_flight.next().await {
                    done += part_done(sent, location)?;
                    report(done);
                }
            }
            in_flight.push(
                upload
                    .put_part(PutPayload::from(Bytes::from(buf)))
                    .map(move |r| r.map(|()| n)),
            );
        }
        while let Some(sent) = in_flight.next().await {
            done += part_done(sent, location)?;
            report(done);
        }
        Ok(())
    }
    .await;
    drop(in_flight);
    if let Err(err) = outcome {
        if let Err(abort) = upload.abort().await {
            debug!(error = %abort, "aborting the multipart upload failed");
        }
        return Err(err);
    }
    upload
        .complete()
        .await
        .map_err(|e| RemoteError::store("completing the upload of", location, e))?;
    Ok(hasher.digest())
}

fn part_done(sent: object_store::Result<u64>, location: &Path) -> Result<u64> {
    sent.map_err(|e| RemoteError::store("uploading a part of", location, e))
}

/// Every object under `prefix`.
async fn list_all(remote: &dyn ObjectStore, prefix: &Path) -> Result<Vec<ObjectMeta>> {
    remote
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(|e| RemoteError::store("listing", prefix, e))
}

/// Deletes segment objects the manifest does not name: in the current and
/// retained generations, and whole generation directories it does not know.
/// `listing` was taken before the push; objects this push wrote are named.
async fn remove_unnamed(
    remote: &dyn ObjectStore,
    prefix: &Path,
    manifest: &Manifest,
    listing: Result<Vec<ObjectMeta>>,
) -> Result<usize> {
    let listing = listing?;
    let mut keep: HashSet<String> = HashSet::new();
    let mut known: HashSet<u64> = HashSet::new();
    if let Ok(id) = manifest.id() {
        known.insert(id);
        for s in &manifest.segments {
            keep.insert(layout::segment(prefix, id, &s.object).to_string());
        }
    }
    for g in &manifest.retained {
        if let Some(id) = parse_id(&g.store_id) {
            known.insert(id);
            for s in &g.segments {
                keep.insert(layout::segment(prefix, id, &s.object).to_string());
            }
        }
    }
    let depth = prefix.parts().count();
    let mut doomed = Vec::new();
    for object in listing {
        // Only <prefix>/<16 hex digits>/<...>.seg: never anything else.
        let parts: Vec<_> = object.location.parts().collect();
        if parts.len() != depth + 2 {
            continue;
        }
        let Some(id) = layout::parse_generation_name(parts[depth].as_ref()) else {
            continue;
        };
        if !layout::is_segment_name(parts[depth + 1].as_ref()) {
            continue;
        }
        if !known.contains(&id) || !keep.contains(object.location.as_ref()) {
            doomed.push(object.location);
        }
    }
    let count = doomed.len();
    for location in doomed {
        match remote.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                debug!(object = %location, "removed");
            }
            Err(e) => return Err(RemoteError::store("deleting", &location, e)),
        }
    }
    if count > 0 {
        info!(count, "removed objects no manifest names");
    }
    Ok(count)
}
