//! Compaction reports progress during a large value (not only once it is
//! copied), and `mmblob compact` stops within a second of Ctrl-C, removes
//! its half-written new file and leaves the store as it was.

// The tests run the `mmblob` binary, which is built with the `cli` feature.
#![cfg(feature = "cli")]

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mmblob::DataStore;

const MIB: u64 = 1 << 20;

/// A store with a few small values around one large value of `large` bytes,
/// an overwritten value so there is something to compact.
fn store_with_large_value(path: &std::path::Path, large: u64) {
    let db = DataStore::open(path).expect("open");
    db.write(b"before", b"small value").expect("write");
    db.write_stream(b"large", &mut std::io::repeat(7).take(large))
        .expect("write large");
    db.write(b"after", b"old").expect("write");
    db.write(b"after", b"new").expect("overwrite");
}

#[test]
fn progress_moves_in_pieces_during_a_large_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.mmblob");
    store_with_large_value(&path, 64 * MIB);
    let db = DataStore::open(&path).expect("open");
    let calls = Mutex::new(Vec::new());
    let stats = db
        .compact_with_progress(|n| calls.lock().expect("lock").push(n))
        .expect("compact");
    assert_eq!(stats.entries_kept, 3);
    let calls = calls.into_inner().expect("lock");
    let total: u64 = calls.iter().sum();
    assert_eq!(total, 64 * MIB + 11 + 3, "every live byte is reported once");
    assert!(
        calls.iter().all(|&n| n <= 8 * MIB),
        "no single report covers more than 8 MiB: {calls:?}"
    );
    assert!(calls.len() >= 8, "{calls:?}");
    let large = db.read(b"large").expect("read").expect("large");
    assert!(large.iter().all(|&b| b == 7) && large.len() as u64 == 64 * MIB);
    assert!(large.verify_checksum());
    drop(large);
    drop(db);
    let reopened = DataStore::open_existing(&path).expect("reopen");
    assert!(reopened.verify().expect("verify").is_ok());
    assert_eq!(
        &*reopened.read(b"after").expect("read").expect("after"),
        b"new"
    );
}

#[test]
fn ctrl_c_stops_compact_at_once_and_leaves_the_store_as_it_was() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("test.mmblob");
    store_with_large_value(&path, 384 * MIB);
    let before = std::fs::metadata(&path).expect("stat");
    let temp = dir.path().join(".test.mmblob.compacting");

    let mut child = Command::new(env!("CARGO_BIN_EXE_mmblob"))
        .arg("--store")
        .arg(&path)
        .arg("compact")
        .env_remove("MMBLOB_STORE")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mmblob compact");
    // Wait until the new file is being written.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::metadata(&temp).is_ok_and(|m| m.len() > 16 * MIB) {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "compaction ended before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "compaction never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let interrupted = Instant::now();
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let status = child.wait().expect("wait");
    let took = interrupted.elapsed();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(took < Duration::from_secs(1), "took {took:?} to stop");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!temp.exists(), "the half-written file is left behind");

    let after = std::fs::metadata(&path).expect("stat");
    assert_eq!(
        (after.ino(), after.len(), after.mtime(), after.mtime_nsec()),
        (
            before.ino(),
            before.len(),
            before.mtime(),
            before.mtime_nsec()
        ),
        "the store file was changed"
    );
    let db = DataStore::open_existing(&path).expect("reopen");
    assert_eq!(db.len(), 3);
    assert_eq!(&*db.read(b"after").expect("read").expect("after"), b"new");
}
