//! `mmblob push`, `pull` and `follow` against a `file://` remote.

use std::time::Duration;

use mmblob::DataStore;

use crate::common::*;

#[test]
fn push_then_pull_make_a_replica_and_json_reports_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("w.mmblob");
    let url = format!("file://{}", dir.path().join("remote").display());
    let store = DataStore::open(&store_path).unwrap();
    write_range(&store, 0..200, 300);

    // The writer keeps its lock: push opens the store read-only.
    let out = mmblob()
        .args([
            "--store",
            store_path.to_str().unwrap(),
            "--json",
            "push",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["uploaded_bytes"], store.file_size().unwrap());
    assert_eq!(report["new_generation"], true);

    let replica = dir.path().join("r.mmblob");
    let out = mmblob()
        .args(["--json", "pull", &url, replica.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["entries_checked"], 200);
    assert_same(&store, &open_replica(&replica));

    // Incremental: only the new bytes.
    let before = store.file_size().unwrap();
    write_range(&store, 200..210, 300);
    let out = mmblob()
        .args([
            "--store",
            store_path.to_str().unwrap(),
            "--json",
            "push",
            &url,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["uploaded_bytes"],
        store.file_size().unwrap() - before
    );
    let out = mmblob()
        .args(["pull", &url, replica.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("pulled"));
    assert_same(&store, &open_replica(&replica));
}

#[test]
fn pull_refuses_an_unrelated_store_with_exit_6_and_a_bad_url_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("remote").display());
    let store_path = dir.path().join("w.mmblob");
    DataStore::open(&store_path)
        .unwrap()
        .write(b"a", b"b")
        .unwrap();
    assert!(
        mmblob()
            .args(["--store", store_path.to_str().unwrap(), "push", &url])
            .status()
            .unwrap()
            .success()
    );
    let other = dir.path().join("other.mmblob");
    DataStore::open(&other)
        .unwrap()
        .write(b"mine", b"x")
        .unwrap();
    let before = std::fs::read(&other).unwrap();
    let out = mmblob()
        .args(["pull", &url, other.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a replica"));
    assert_eq!(std::fs::read(&other).unwrap(), before);

    let out = mmblob()
        .args(["pull", "ftp://x/y", dir.path().join("n").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = mmblob()
        .args([
            "pull",
            &format!("file://{}", dir.path().join("empty").display()),
            dir.path().join("n").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing has been pushed"));
}

#[test]
fn a_follow_process_sees_every_entry_pushed_while_the_writer_writes() {
    let dir = tempfile::tempdir().unwrap();
    let remote_dir = dir.path().join("remote");
    let url = format!("file://{}", remote_dir.display());
    let store = std::sync::Arc::new(DataStore::open(dir.path().join("w.mmblob")).unwrap());
    store.write(b"first", b"entry").unwrap();
    let target = mmblob_remote::open_url(&url).unwrap();
    let pusher =
        mmblob_remote::Pusher::builder(store.clone(), target.store.clone(), target.prefix.clone())
            .interval(Duration::from_millis(50))
            .start()
            .unwrap();
    pusher.push_now().unwrap();
    let replica = dir.path().join("r.mmblob");
    let (mut follower, lines) = spawn(&[
        "--json",
        "follow",
        "--interval-ms",
        "50",
        &url,
        replica.to_str().unwrap(),
    ]);
    for i in 0..2000u64 {
        store
            .write(format!("k{i}").as_bytes(), &value(i, 200))
            .unwrap();
        if i == 1000 {
            store.compact().unwrap();
        }
    }
    let last = pusher.stop().unwrap();
    let seen = lines.wait_for(Duration::from_secs(60), |l| json_end(l) == Some(last.end));
    kill9(&mut follower);
    assert!(seen.is_some(), "the follower never reached the last push");
    assert_same(&store, &open_replica(&replica));
}
