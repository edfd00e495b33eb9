//! The index sidecar (`<store>.index`) only ever speeds up open: a stale,
//! damaged, foreign or missing sidecar gives exactly the same store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mmblob::DataStore;

const KEYS: u32 = 12_000;

fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".index");
    PathBuf::from(name)
}

fn contents(store: &DataStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store
        .iter_entries()
        .map(|e| (e.key().to_vec(), e.to_vec()))
        .collect()
}

fn build(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let store = DataStore::open(path).expect("open");
    let keys: Vec<[u8; 4]> = (0..KEYS).map(u32::to_le_bytes).collect();
    for chunk in keys.chunks(500) {
        let batch: Vec<(&[u8], &[u8])> =
            chunk.iter().map(|k| (k.as_slice(), k.as_slice())).collect();
        store.batch_write(&batch).expect("batch");
    }
    contents(&store)
}

/// The files as a crash would leave them: the store as written so far and
/// the sidecar from the last clean close (the store stays open meanwhile).
fn crash_copy(path: &Path) -> PathBuf {
    let copy = path.with_extension("crashed");
    std::fs::copy(path, &copy).expect("copy store");
    std::fs::copy(sidecar(path), sidecar(&copy)).expect("copy sidecar");
    copy
}

fn reopen(path: &Path) -> (DataStore, BTreeMap<Vec<u8>, Vec<u8>>) {
    let store = DataStore::open(path).expect("reopen");
    let seen = contents(&store);
    assert_eq!(store.len(), seen.len());
    assert!(store.verify().expect("verify").is_ok());
    (store, seen)
}

#[test]
fn a_dropped_store_leaves_a_sidecar_that_reopens_identically() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    let expected = build(&path);
    assert!(
        sidecar(&path).exists(),
        "a large store leaves a sidecar on drop"
    );
    let (store, seen) = reopen(&path);
    assert_eq!(seen, expected);
    assert_eq!(store.stats().live_entries, u64::from(KEYS));
}

#[test]
fn entries_written_after_the_sidecar_are_caught_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    let mut expected = build(&path);
    let saved = std::fs::read(sidecar(&path)).expect("sidecar");
    let store = DataStore::open(&path).expect("open");
    store.write(b"new", b"after the snapshot").expect("write");
    store
        .write(&7u32.to_le_bytes(), b"overwritten")
        .expect("overwrite");
    assert!(store.delete(&8u32.to_le_bytes()).expect("delete"));
    assert_eq!(
        std::fs::read(sidecar(&path)).expect("sidecar"),
        saved,
        "the index is loaded copy-on-write: changing it never writes the sidecar"
    );
    let live_bytes = store.stats().live_bytes;
    let crashed = crash_copy(&path);
    drop(store);
    expected.insert(b"new".to_vec(), b"after the snapshot".to_vec());
    expected.insert(7u32.to_le_bytes().to_vec(), b"overwritten".to_vec());
    expected.remove(8u32.to_le_bytes().as_slice());
    let (store, seen) = reopen(&crashed);
    assert_eq!(seen, expected);
    assert_eq!(store.stats().live_bytes, live_bytes);
}

#[test]
fn a_damaged_or_foreign_sidecar_is_ignored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    let expected = build(&path);
    let good = std::fs::read(sidecar(&path)).expect("sidecar");
    for at in [0, 9, 20, 30, 40, 60, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(sidecar(&path), &bad).expect("damage sidecar");
        let (_store, seen) = reopen(&path);
        assert_eq!(seen, expected, "flip at {at}");
    }
    std::fs::write(sidecar(&path), &good[..good.len() / 3]).expect("truncate sidecar");
    assert_eq!(reopen(&path).1, expected);
    std::fs::remove_file(sidecar(&path)).expect("delete sidecar");
    assert_eq!(reopen(&path).1, expected);

    let other = dir.path().join("other.mmblob");
    build(&other);
    std::fs::copy(sidecar(&other), sidecar(&path)).expect("foreign sidecar");
    assert_eq!(reopen(&path).1, expected);
}

#[test]
fn a_sidecar_from_before_compaction_is_ignored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    build(&path);
    let before = std::fs::read(sidecar(&path)).expect("sidecar");
    let store = DataStore::open(&path).expect("open");
    for i in 0..KEYS / 2 {
        store.delete(&i.to_le_bytes()).expect("delete");
    }
    store.compact().expect("compact");
    let expected = contents(&store);
    std::fs::write(sidecar(&path), &before).expect("put the old sidecar back");
    let crashed = crash_copy(&path);
    drop(store);
    let (_store, seen) = reopen(&crashed);
    assert_eq!(seen, expected);
    assert_eq!(seen.len(), (KEYS / 2) as usize);
}

#[test]
fn compaction_leaves_a_sidecar_for_the_new_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    build(&path);
    let store = DataStore::open(&path).expect("open");
    for i in 0..KEYS / 10 {
        store
            .write(&i.to_le_bytes(), b"rewritten")
            .expect("overwrite");
    }
    store.compact().expect("compact");
    let expected = contents(&store);
    // Header bytes 16..24 and sidecar bytes 8..16 hold the store id.
    let file = std::fs::read(&path).expect("store");
    let side = std::fs::read(sidecar(&path)).expect("compaction leaves a sidecar");
    assert_eq!(side[8..16], file[16..24], "the sidecar is the new file's");
    let crashed = crash_copy(&path);
    drop(store);
    let (_store, seen) = reopen(&crashed);
    assert_eq!(seen, expected);
}
