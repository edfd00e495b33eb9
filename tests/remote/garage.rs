//! Against a 3-node Garage cluster with 3 copies of every object, started
//! by `tests/remote/run.sh`, which runs these with `--ignored`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mmblob::DataStore;
use mmblob_remote::object_store::ObjectStore;
use mmblob_remote::object_store::path::Path as ObjectPath;
use mmblob_remote::{PullOptions, PushOptions, Remote, RemoteError, open_url, pull, push};

use crate::common::*;

/// The cluster's bucket; fails loudly when the tests run without it.
fn bucket() -> String {
    assert!(
        std::env::var_os("MMBLOB_GARAGE").is_some(),
        "run these through tests/remote/run.sh, which starts the Garage cluster"
    );
    std::env::var("MMBLOB_GARAGE_BUCKET").unwrap()
}

/// A fresh prefix in the cluster's bucket.
fn remote(name: &str) -> (String, Remote) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let url = format!("s3://{}/{name}-{nanos}", bucket());
    let remote = open_url(&url).unwrap();
    (url, remote)
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Sizes of the segment objects under the remote's prefix, sorted by name.
fn segment_sizes(remote: &Remote) -> Vec<(String, u64)> {
    use futures::TryStreamExt;
    let prefix = ObjectPath::from(remote.prefix.as_str());
    let mut out: Vec<(String, u64)> = block_on(
        remote
            .store
            .list(Some(&prefix))
            .map_ok(|m| (m.location.to_string(), m.size))
            .try_collect::<Vec<_>>(),
    )
    .unwrap()
    .into_iter()
    .filter(|(name, _)| name.ends_with(".seg"))
    .collect();
    out.sort();
    out
}

#[test]
#[ignore = "needs the Garage cluster of tests/remote/run.sh"]
fn garage_round_trip_of_100k_entries_and_a_1_gib_streamed_value() {
    let dir = tempfile::tempdir().unwrap();
    let (_url, remote) = remote("roundtrip");
    let store = DataStore::open(dir.path().join("w.mmblob")).unwrap();
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..100_000u64)
        .map(|i| {
            (
                format!("k{i}").into_bytes(),
                value(i, 64 + (i % 200) as usize),
            )
        })
        .collect();
    for chunk in entries.chunks(1000) {
        let batch: Vec<(&[u8], &[u8])> = chunk
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        store.batch_write(&batch).unwrap();
    }
    let gib = 1u64 << 30;
    store
        .write_stream(
            b"big",
            &mut Pattern {
                left: gib,
                state: 7,
            },
        )
        .unwrap();
    let started = Instant::now();
    let pushed = push(
        &store,
        remote.store.as_ref(),
        &remote.prefix,
        &PushOptions::default(),
    )
    .unwrap();
    eprintln!(
        "pushed {} bytes in {:?}",
        pushed.uploaded_bytes,
        started.elapsed()
    );
    assert_eq!(pushed.uploaded_bytes, store.file_size().unwrap());

    let replica = dir.path().join("r.mmblob");
    let started = Instant::now();
    let pulled = pull(
        remote.store.as_ref(),
        &remote.prefix,
        &replica,
        &PullOptions::default(),
    )
    .unwrap();
    eprintln!(
        "pulled {} bytes in {:?}",
        pulled.downloaded_bytes,
        started.elapsed()
    );
    assert_eq!(pulled.entries_checked, 100_001);
    let reader = open_replica(&replica);
    assert_eq!(reader.len(), 100_001);
    for (k, v) in entries.iter().step_by(7) {
        assert_eq!(&*reader.read(k).unwrap().unwrap(), &v[..]);
    }
    let big = reader.read(b"big").unwrap().unwrap();
    assert_eq!(big.len() as u64, gib);
    assert_eq!(
        hash_reader(big.stream()),
        hash_reader(Pattern {
            left: gib,
            state: 7
        })
    );
}

#[test]
#[ignore = "needs the Garage cluster of tests/remote/run.sh"]
fn garage_incremental_push_uploads_only_the_new_bytes_and_compaction_starts_a_generation() {
    let dir = tempfile::tempdir().unwrap();
    let (_url, remote) = remote("incremental");
    let store = DataStore::open(dir.path().join("w.mmblob")).unwrap();
    write_range(&store, 0..5000, 2000);
    push(
        &store,
        remote.store.as_ref(),
        &remote.prefix,
        &PushOptions::default(),
    )
    .unwrap();
    let first_end = store.file_size().unwrap();
    let replica = dir.path().join("r.mmblob");
    pull(
        remote.store.as_ref(),
        &remote.prefix,
        &replica,
        &PullOptions::default(),
    )
    .unwrap();

    write_range(&store, 5000..5100, 2000);
    let end = store.file_size().unwrap();
    let stats = push(
        &store,
        remote.store.as_ref(),
        &remote.prefix,
        &PushOptions::default(),
    )
    .unwrap();
    assert_eq!(stats.uploaded_bytes, end - first_end);
    let sizes = segment_sizes(&remote);
    assert_eq!(sizes.len(), 2, "{sizes:?}");
    assert_eq!(sizes[0].1, first_end, "first segment: the whole first push");
    assert_eq!(
        sizes[1].1,
        end - first_end,
        "second segment: only the new bytes"
    );
    let pulled = pull(
        remote.store.as_ref(),
        &remote.prefix,
        &replica,
        &PullOptions::default(),
    )
    .unwrap();
    assert_eq!(pulled.downloaded_bytes, end - first_end);
    assert_same(&store, &open_replica(&replica));

    // Compaction: a new store id, a new generation, a full upload.
    for i in 0..2500u64 {
        store.delete(format!("k{i}").as_bytes()).unwrap();
    }
    store.compact().unwrap();
    let stats = push(
        &store,
        remote.store.as_ref(),
        &remote.prefix,
        &PushOptions::default(),
    )
    .unwrap();
    assert!(stats.new_generation);
    assert_eq!(stats.uploaded_bytes, store.file_size().unwrap());
    let reader = open_replica(&replica);
    let pulled = pull(
        remote.store.as_ref(),
        &remote.prefix,
        &replica,
        &PullOptions::default(),
    )
    .unwrap();
    assert!(pulled.replaced);
    reader.refresh().unwrap();
    assert_same(&store, &reader);
    // The old generation is retained (default 1) until the next compaction.
    assert_eq!(segment_sizes(&remote).len(), 3);
    store.compact().unwrap();
    push(
        &store,
        remote.store.as_ref(),
        &remote.prefix,
        &PushOptions::default(),
    )
    .unwrap();
    assert_eq!(
        segment_sizes(&remote).len(),
        2,
        "the oldest generation was deleted"
    );
}

#[test]
#[ignore = "needs the Garage cluster of tests/remote/run.sh"]
fn garage_a_pusher_killed_mid_upload_leaves_the_previous_complete_state() {
    let dir = tempfile::tempdir().unwrap();
    let (url, remote) = remote("killed");
    let store_path = dir.path().join("w.mmblob");
    let store = DataStore::open(&store_path).unwrap();
    write_range(&store, 0..1000, 1000);
    push(
        &store,
        remote.store.as_ref(),
        &remote.prefix,
        &PushOptions::default(),
    )
    .unwrap();
    let complete_end = store.file_size().unwrap();
    let complete_len = store.len();
    // 256 MiB more: a multipart upload of many parts.
    store
        .write_stream(
            b"large",
            &mut Pattern {
                left: 256 << 20,
                state: 3,
            },
        )
        .unwrap();

    let mut killed_mid_upload = 0;
    for delay_ms in [300u64, 800, 1500] {
        let (mut child, _lines) = spawn(&["--store", store_path.to_str().unwrap(), "push", &url]);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let still_running = child.try_wait().unwrap().is_none();
        kill9(&mut child);
        if !still_running {
            break;
        }
        killed_mid_upload += 1;
        let replica = dir.path().join(format!("r{delay_ms}.mmblob"));
        let pulled = pull(
            remote.store.as_ref(),
            &remote.prefix,
            &replica,
            &PullOptions::default(),
        )
        .unwrap();
        assert_eq!(
            pulled.end, complete_end,
            "the manifest still names the earlier push"
        );
        let reader = open_replica(&replica);
        assert_eq!(reader.len(), complete_len);
        assert!(!reader.exists(b"large").unwrap());
    }
    assert!(
        killed_mid_upload > 0,
        "the push finished before it could be killed"
    );
    // The next push completes and the replica catches up.
    push(
        &store,
        remote.store.as_ref(),
        &remote.prefix,
        &PushOptions::default(),
    )
    .unwrap();
    let replica = dir.path().join("after.mmblob");
    pull(
        remote.store.as_ref(),
        &remote.prefix,
        &replica,
        &PullOptions::default(),
    )
    .unwrap();
    assert_same(&store, &open_replica(&replica));
    assert_eq!(segment_sizes(&remote).len(), 2);
}

/// Stops node 3 with SIGKILL; starts it again when dropped.
struct NodeDown;

impl NodeDown {
    fn new() -> NodeDown {
        let pid_file = std::env::var("MMBLOB_GARAGE_NODE3_PIDFILE").unwrap();
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let status = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        // Let the others notice.
        std::thread::sleep(Duration::from_secs(2));
        NodeDown
    }
}

impl Drop for NodeDown {
    fn drop(&mut self) {
        let start = std::env::var("MMBLOB_GARAGE_NODE3_START").unwrap();
        let _ = std::process::Command::new("sh")
            .args(["-c", &start])
            .status();
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
#[ignore = "needs the Garage cluster of tests/remote/run.sh"]
fn garage_push_and_pull_work_with_one_node_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (_url, remote) = remote("nodedown");
    let store = DataStore::open(dir.path().join("w.mmblob")).unwrap();
    write_range(&store, 0..2000, 1000);
    push(
        &store,
        remote.store.as_ref(),
        &remote.prefix,
        &PushOptions::default(),
    )
    .unwrap();
    let replica = dir.path().join("r.mmblob");
    {
        let _down = NodeDown::new();
        write_range(&store, 2000..2500, 1000);
        store
            .write_stream(
                b"value",
                &mut Pattern {
                    left: 40 << 20,
                    state: 1,
                },
            )
            .unwrap();
        push(
            &store,
            remote.store.as_ref(),
            &remote.prefix,
            &PushOptions::default(),
        )
        .unwrap();
        pull(
            remote.store.as_ref(),
            &remote.prefix,
            &replica,
            &PullOptions::default(),
        )
        .unwrap();
        assert_same(&store, &open_replica(&replica));
    }
}

#[test]
#[ignore = "needs the Garage cluster of tests/remote/run.sh"]
fn garage_wrong_credentials_and_an_unreachable_endpoint_give_typed_errors_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (url, remote) = remote("denied");
    let store_path = dir.path().join("w.mmblob");
    let store = DataStore::open(&store_path).unwrap();
    write_range(&store, 0..100, 100);
    push(
        &store,
        remote.store.as_ref(),
        &remote.prefix,
        &PushOptions::default(),
    )
    .unwrap();
    let replica = dir.path().join("r.mmblob");
    pull(
        remote.store.as_ref(),
        &remote.prefix,
        &replica,
        &PullOptions::default(),
    )
    .unwrap();
    write_range(&store, 100..200, 100);
    let store_bytes = std::fs::read(&store_path).unwrap();
    let replica_bytes = std::fs::read(&replica).unwrap();

    let bad_store = mmblob_remote::object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket())
        .with_secret_access_key("0000000000000000000000000000000000000000000000000000000000000000")
        .with_allow_http(true)
        .build()
        .unwrap();
    let err = push(&store, &bad_store, &remote.prefix, &PushOptions::default()).unwrap_err();
    assert!(matches!(err, RemoteError::AccessDenied { .. }), "{err:?}");
    let err = pull(
        &bad_store,
        &remote.prefix,
        &replica,
        &PullOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, RemoteError::AccessDenied { .. }), "{err:?}");

    // Nothing listens on port 1 of the loopback address.
    let prefix = url
        .trim_start_matches("s3://")
        .split_once('/')
        .unwrap()
        .1
        .to_owned();
    let unreachable = mmblob_remote::object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket())
        .with_endpoint("http://127.0.0.1:1")
        .with_allow_http(true)
        .with_retry(mmblob_remote::object_store::RetryConfig {
            max_retries: 1,
            retry_timeout: Duration::from_secs(5),
            ..Default::default()
        })
        .build()
        .unwrap();
    let started = Instant::now();
    let err = push(&store, &unreachable, &prefix, &PushOptions::default()).unwrap_err();
    assert!(matches!(err, RemoteError::Store { .. }), "{err:?}");
    let err = pull(&unreachable, &prefix, &replica, &PullOptions::default()).unwrap_err();
    assert!(matches!(err, RemoteError::Store { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(60));

    // The CLI says so with exit status 1, and the files are unchanged.
    let out = mmblob()
        .args(["--store", store_path.to_str().unwrap(), "push", &url])
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "0000000000000000000000000000000000000000000000000000000000000000",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused access"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&store_path).unwrap(), store_bytes);
    assert_eq!(std::fs::read(&replica).unwrap(), replica_bytes);
    // And the remote still holds the first push, whole.
    let fresh = dir.path().join("fresh.mmblob");
    assert_eq!(
        pull(
            remote.store.as_ref(),
            &remote.prefix,
            &fresh,
            &PullOptions::default()
        )
        .unwrap()
        .entries_checked,
        100
    );
}

#[test]
#[ignore = "needs the Garage cluster of tests/remote/run.sh"]
fn garage_a_follower_process_sees_every_pushed_entry_while_the_writer_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (url, remote) = remote("follow");
    let store = Arc::new(DataStore::open(dir.path().join("w.mmblob")).unwrap());
    store.write(b"first", b"entry").unwrap();
    let remote_store: Arc<dyn ObjectStore> = remote.store.clone();
    let pusher = mmblob_remote::Pusher::builder(store.clone(), remote_store, remote.prefix.clone())
        .interval(Duration::from_millis(200))
        .start()
        .unwrap();
    pusher.push_now().unwrap();
    let replica = dir.path().join("r.mmblob");
    let (mut follower, lines) = spawn(&[
        "--json",
        "follow",
        "--interval-ms",
        "200",
        &url,
        replica.to_str().unwrap(),
    ]);
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < Duration::from_secs(5) {
        store
            .write(format!("k{i}").as_bytes(), &value(i, 500))
            .unwrap();
        i += 1;
        if i.is_multiple_of(50) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let last = pusher.stop().unwrap();
    let seen = lines.wait_for(Duration::from_secs(60), |l| json_end(l) == Some(last.end));
    kill9(&mut follower);
    assert!(seen.is_some(), "the follower never reached the last push");
    assert_same(&store, &open_replica(&replica));
}
