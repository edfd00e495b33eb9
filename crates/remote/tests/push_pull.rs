//! Push and pull against object_store's in-memory and local-file stores.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use mmblob_engine::{DataStore, OpenOptions};
use mmblob_remote::object_store::local::LocalFileSystem;
use mmblob_remote::object_store::memory::InMemory;
use mmblob_remote::object_store::path::Path;
use mmblob_remote::object_store::{
    self, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use mmblob_remote::{PullOptions, PushOptions, RemoteError, pull, push};

fn value(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j * 7) as u8).collect()
}

fn write_range(store: &DataStore, range: std::ops::Range<u64>, len: usize) {
    for i in range {
        store
            .write(format!("k{i}").as_bytes(), &value(i, len))
            .unwrap();
    }
}

fn open_replica(path: &std::path::Path) -> DataStore {
    OpenOptions::new()
        .read_only(true)
        .create(false)
        .open(path)
        .unwrap()
}

fn assert_same(a: &DataStore, b: &DataStore) {
    assert_eq!(a.len(), b.len());
    for key in a.keys() {
        let want = a.read(&key).unwrap().unwrap();
        let got = b
            .read(&key)
            .unwrap()
            .unwrap_or_else(|| panic!("missing {key:?}"));
        assert_eq!(&*want, &*got);
    }
}

async fn sizes(remote: &dyn ObjectStore) -> Vec<(String, u64)> {
    use futures::TryStreamExt;
    let mut out: Vec<(String, u64)> = remote
        .list(None)
        .map_ok(|m| (m.location.to_string(), m.size))
        .try_collect()
        .await
        .unwrap();
    out.sort();
    out
}

fn segment_sizes(remote: &dyn ObjectStore) -> Vec<(String, u64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(sizes(remote))
        .into_iter()
        .filter(|(name, _)| name.ends_with(".seg"))
        .collect()
}

#[test]
fn round_trip_and_incremental_push_upload_only_new_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("w.mmblob")).unwrap();
    let remote = InMemory::new();
    write_range(&store, 0..500, 100);
    let first = push(&store, &remote, "a/b", &PushOptions::default()).unwrap();
    assert!(first.new_generation);
    assert_eq!(first.uploaded_bytes, store.file_size().unwrap());

    let replica = dir.path().join("r.mmblob");
    let pulled = pull(&remote, "a/b", &replica, &PullOptions::default()).unwrap();
    assert!(pulled.replaced);
    assert_eq!(pulled.entries_checked, 500);
    let reader = open_replica(&replica);
    assert_same(&store, &reader);

    // Nothing new: nothing uploaded, nothing downloaded.
    let idle = push(&store, &remote, "a/b", &PushOptions::default()).unwrap();
    assert_eq!(idle.uploaded_bytes, 0);
    assert_eq!(
        pull(&remote, "a/b", &replica, &PullOptions::default())
            .unwrap()
            .downloaded_bytes,
        0
    );

    let before = store.file_size().unwrap();
    write_range(&store, 500..520, 1000);
    store.delete(b"k3").unwrap();
    let after = store.file_size().unwrap();
    let second = push(&store, &remote, "a/b", &PushOptions::default()).unwrap();
    assert!(!second.new_generation);
    assert_eq!(second.uploaded_bytes, after - before);
    let objects = segment_sizes(&remote);
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert_eq!(
        objects[1].1,
        after - before,
        "the second segment holds only the new bytes"
    );

    let extended = pull(&remote, "a/b", &replica, &PullOptions::default()).unwrap();
    assert!(!extended.replaced);
    assert_eq!(extended.downloaded_bytes, after - before);
    assert_eq!(extended.entries_checked, 21);
    reader.refresh().unwrap();
    assert_same(&store, &reader);
    assert!(!reader.exists(b"k3").unwrap());
}

#[test]
fn large_ranges_go_up_in_parts_and_come_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("w.mmblob")).unwrap();
    let big = value(9, 23 << 20);
    store.write(b"big", &big).unwrap();
    store.write(b"small", b"x").unwrap();
    std::fs::create_dir_all(dir.path().join("remote")).unwrap();
    let remote = LocalFileSystem::new_with_prefix(dir.path().join("remote")).unwrap();
    let options = PushOptions::default().part_size(5 << 20).concurrency(2);
    let stats = push(&store, &remote, "", &options).unwrap();
    assert_eq!(stats.uploaded_bytes, store.file_size().unwrap());
    let replica = dir.path().join("r.mmblob");
    pull(&remote, "", &replica, &PullOptions::default()).unwrap();
    let reader = open_replica(&replica);
    assert_eq!(&*reader.read(b"big").unwrap().unwrap(), &big[..]);
    // The store's file up to its logical end: while the writer is open,
    // space reserved for its next writes may follow, and is not pushed.
    let mut local = std::fs::read(store.path()).unwrap();
    local.truncate(store.file_size().unwrap() as usize);
    assert_eq!(std::fs::read(&replica).unwrap(), local);
}

#[test]
fn compaction_starts_a_new_generation_and_old_ones_are_retired() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("w.mmblob")).unwrap();
    let remote = InMemory::new();
    let options = PushOptions::default().retain_generations(1);
    let replica = dir.path().join("r.mmblob");
    let mut ids = Vec::new();
    for round in 0..3u64 {
        write_range(&store, round * 100..round * 100 + 100, 200);
        for i in round * 100..round * 100 + 50 {
            store.delete(format!("k{i}").as_bytes()).unwrap();
        }
        let stats = push(&store, &remote, "p", &options).unwrap();
        assert_eq!(stats.new_generation, round > 0 || ids.is_empty());
        ids.push(stats.store_id);
        pull(&remote, "p", &replica, &PullOptions::default()).unwrap();
        assert_same(&store, &open_replica(&replica));
        store.compact().unwrap();
    }
    let stats = push(&store, &remote, "p", &options).unwrap();
    assert!(stats.new_generation);
    assert_eq!(
        stats.uploaded_bytes,
        store.file_size().unwrap(),
        "a full upload"
    );
    let pulled = pull(&remote, "p", &replica, &PullOptions::default()).unwrap();
    assert!(pulled.replaced);
    assert_same(&store, &open_replica(&replica));
    // Current generation plus one retained: the two oldest are gone.
    let dirs: std::collections::BTreeSet<String> = segment_sizes(&remote)
        .into_iter()
        .map(|(name, _)| name.split('/').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    assert!(!dirs.contains(&format!("{:016x}", ids[0])));
    assert!(!dirs.contains(&format!("{:016x}", ids[1])));
}

#[test]
fn a_reader_open_on_the_replica_follows_a_new_generation() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("w.mmblob")).unwrap();
    let remote = InMemory::new();
    write_range(&store, 0..100, 64);
    push(&store, &remote, "", &PushOptions::default()).unwrap();
    let replica = dir.path().join("r.mmblob");
    pull(&remote, "", &replica, &PullOptions::default()).unwrap();
    let reader = open_replica(&replica);
    let handle = reader.read(b"k1").unwrap().unwrap();
    store.delete(b"k2").unwrap();
    store.compact().unwrap();
    store.write(b"after", b"compaction").unwrap();
    push(&store, &remote, "", &PushOptions::default()).unwrap();
    pull(&remote, "", &replica, &PullOptions::default()).unwrap();
    reader.refresh().unwrap();
    assert_same(&store, &reader);
    assert_eq!(&*handle, &value(1, 64)[..], "an old handle keeps its bytes");
}

/// An object store that fails uploads of segments while `fail` is set.
#[derive(Debug)]
struct Flaky {
    inner: InMemory,
    fail: AtomicBool,
}

impl fmt::Display for Flaky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flaky")
    }
}

impl Flaky {
    fn check(&self, location: &Path) -> object_store::Result<()> {
        if self.fail.load(Ordering::SeqCst) && location.as_ref().ends_with(".seg") {
            return Err(object_store::Error::Generic {
                store: "Flaky",
                source: "injected upload failure".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for Flaky {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check(location)?;
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        self.inner.delete(location).await
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy(from, to).await
    }
    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

#[test]
fn a_failed_push_keeps_the_previous_manifest_and_the_next_push_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("w.mmblob")).unwrap();
    let remote = Flaky {
        inner: InMemory::new(),
        fail: AtomicBool::new(false),
    };
    write_range(&store, 0..50, 100);
    push(&store, &remote, "x", &PushOptions::default()).unwrap();
    let pushed_end = store.file_size().unwrap();
    write_range(&store, 50..60, 100);

    remote.fail.store(true, Ordering::SeqCst);
    let err = push(&store, &remote, "x", &PushOptions::default()).unwrap_err();
    assert!(matches!(err, RemoteError::Store { .. }), "{err:?}");
    remote.fail.store(false, Ordering::SeqCst);

    // The remote still holds the complete earlier state.
    let replica = dir.path().join("r.mmblob");
    let pulled = pull(&remote, "x", &replica, &PullOptions::default()).unwrap();
    assert_eq!(pulled.end, pushed_end);
    assert_eq!(open_replica(&replica).len(), 50);

    // An orphan left by a crashed push is removed by the next push.
    let orphan = Path::from(format!(
        "x/{:016x}/00000000000000000999-00000000000000001999.seg",
        pulled.store_id
    ));
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(remote.inner.put(&orphan, PutPayload::from_static(b"junk")))
        .unwrap();
    let stats = push(&store, &remote, "x", &PushOptions::default()).unwrap();
    assert_eq!(stats.removed_objects, 1);
    assert_eq!(segment_sizes(&remote).len(), 2);
    pull(&remote, "x", &replica, &PullOptions::default()).unwrap();
    assert_eq!(open_replica(&replica).len(), 60);
}

#[test]
fn damaged_remote_bytes_are_refused_and_the_replica_is_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let remote_dir = dir.path().join("remote");
    std::fs::create_dir_all(&remote_dir).unwrap();
    let remote = LocalFileSystem::new_with_prefix(&remote_dir).unwrap();
    let store = DataStore::open(dir.path().join("w.mmblob")).unwrap();
    write_range(&store, 0..20, 300);
    push(&store, &remote, "", &PushOptions::default()).unwrap();
    let replica = dir.path().join("r.mmblob");
    pull(&remote, "", &replica, &PullOptions::default()).unwrap();
    let before = std::fs::read(&replica).unwrap();

    write_range(&store, 20..30, 300);
    let stats = push(&store, &remote, "", &PushOptions::default()).unwrap();
    // Flip one byte of the new segment.
    let gen_dir = remote_dir.join(format!("{:016x}", stats.store_id));
    let mut segs: Vec<_> = std::fs::read_dir(&gen_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    let newest = segs.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(newest, &bytes).unwrap();

    let err = pull(&remote, "", &replica, &PullOptions::default()).unwrap_err();
    assert!(matches!(err, RemoteError::BadSegment { .. }), "{err:?}");
    assert_eq!(
        std::fs::read(&replica).unwrap(),
        before,
        "replica untouched"
    );

    // A fresh pull checks the whole segment's xxh3 too.
    let fresh = dir.path().join("fresh.mmblob");
    let err = pull(&remote, "", &fresh, &PullOptions::default()).unwrap_err();
    assert!(matches!(err, RemoteError::BadSegment { .. }), "{err:?}");
    assert!(!fresh.exists());
    assert_eq!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".pull"))
            .count(),
        0,
        "no staging file left"
    );
}

#[test]
fn a_pull_never_overwrites_an_unrelated_file_or_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("w.mmblob")).unwrap();
    write_range(&store, 0..5, 10);
    let remote = InMemory::new();
    push(&store, &remote, "", &PushOptions::default()).unwrap();

    let other = dir.path().join("other.mmblob");
    DataStore::open(&other)
        .unwrap()
        .write(b"mine", b"keep")
        .unwrap();
    let before = std::fs::read(&other).unwrap();
    let err = pull(&remote, "", &other, &PullOptions::default()).unwrap_err();
    assert!(matches!(err, RemoteError::NotAReplica { .. }), "{err:?}");
    assert_eq!(std::fs::read(&other).unwrap(), before);

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"hello, not a store").unwrap();
    let err = pull(&remote, "", &text, &PullOptions::default()).unwrap_err();
    assert!(matches!(err, RemoteError::NotAReplica { .. }), "{err:?}");
    assert_eq!(std::fs::read(&text).unwrap(), b"hello, not a store");

    let err = pull(
        &remote,
        "nothing/here",
        dir.path().join("n.mmblob"),
        &PullOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RemoteError::NoManifest { .. }), "{err:?}");
}

#[test]
fn a_store_that_no_longer_extends_the_remote_copy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.mmblob");
    let remote = InMemory::new();
    {
        let store = DataStore::open(&path).unwrap();
        write_range(&store, 0..10, 10);
        push(&store, &remote, "", &PushOptions::default()).unwrap();
    }
    // Same store id, but the last entry is rewritten with other bytes.
    let len = std::fs::metadata(&path).unwrap().len();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(len as usize - 96);
    std::fs::write(&path, &bytes).unwrap();
    let store = DataStore::open(&path).unwrap();
    write_range(&store, 100..110, 10);
    let err = push(&store, &remote, "", &PushOptions::default()).unwrap_err();
    assert!(matches!(err, RemoteError::Diverged { .. }), "{err:?}");
}

#[test]
fn blocking_calls_inside_a_runtime_are_refused_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("w.mmblob")).unwrap();
    store.write(b"k", b"v").unwrap();
    let remote = InMemory::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err = rt
        .block_on(async { push(&store, &remote, "", &PushOptions::default()) })
        .unwrap_err();
    assert!(matches!(err, RemoteError::InsideRuntime { .. }), "{err:?}");
    rt.block_on(mmblob_remote::push_async(
        &store,
        &remote,
        "",
        &PushOptions::default(),
    ))
    .unwrap();
}

#[test]
fn pusher_and_follower_keep_a_reader_current_while_the_writer_writes() {
    let dir = tempfile::tempdir().unwrap();
    let remote_dir = dir.path().join("remote");
    std::fs::create_dir_all(&remote_dir).unwrap();
    let remote: Arc<dyn ObjectStore> =
        Arc::new(LocalFileSystem::new_with_prefix(&remote_dir).unwrap());
    let store = Arc::new(DataStore::open(dir.path().join("w.mmblob")).unwrap());
    store.write(b"k0", b"v").unwrap();
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&errors);
    let pusher = mmblob_remote::Pusher::builder(Arc::clone(&store), Arc::clone(&remote), "s")
        .interval(std::time::Duration::from_millis(20))
        .on_result(move |r| {
            if let Err(e) = r {
                seen.lock().unwrap().push(e.to_string());
            }
        })
        .start()
        .unwrap();
    pusher.push_now().unwrap();
    let follower =
        mmblob_remote::Follower::builder(Arc::clone(&remote), "s", dir.path().join("r.mmblob"))
            .interval(std::time::Duration::from_millis(20))
            .start()
            .unwrap();
    for i in 1..300u64 {
        store
            .write(format!("k{i}").as_bytes(), &value(i, 500))
            .unwrap();
        if i % 100 == 0 {
            store.compact().unwrap();
        }
    }
    pusher.stop().unwrap();
    follower.pull_now().unwrap();
    assert_same(&store, &follower.store());
    follower.stop();
    assert!(
        errors.lock().unwrap().is_empty(),
        "{:?}",
        errors.lock().unwrap()
    );
}
