//! `close()` returns the errors that dropping a store can only log: here
//! the index sidecar of a large store cannot be written because a
//! directory sits where it goes. The lock is released all the same, and a
//! clean close leaves a sidecar and a store that reopens.

use mmblob::{DataStore, OpenOptions};

fn fill(store: &DataStore, n: u32) {
    let keys: Vec<[u8; 4]> = (0..n).map(u32::to_le_bytes).collect();
    for chunk in keys.chunks(4096) {
        let refs: Vec<(&[u8], &[u8])> = chunk.iter().map(|k| (&k[..], &k[..])).collect();
        store.batch_write(&refs).unwrap();
    }
}

#[test]
fn close_returns_the_sidecar_error_and_still_unlocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.mmblob");
    let store = DataStore::open(&path).unwrap();
    fill(&store, 20_000);
    // A non-empty directory where the sidecar goes: renaming over it fails.
    let sidecar = dir.path().join("s.mmblob.index");
    std::fs::create_dir(&sidecar).unwrap();
    std::fs::write(sidecar.join("x"), b"x").unwrap();
    let err = store.close().expect_err("the sidecar cannot be written");
    assert!(err.to_string().contains("index"), "{err}");
    // Unlocked: a new writer opens, and everything is there.
    let store = DataStore::open(&path).unwrap();
    assert_eq!(store.len(), 20_000);
}

#[test]
fn clean_close_writes_the_sidecar_and_read_only_close_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.mmblob");
    let store = DataStore::open(&path).unwrap();
    fill(&store, 20_000);
    let ro = OpenOptions::new().read_only(true).open(&path).unwrap();
    store.close().unwrap();
    assert!(dir.path().join("s.mmblob.index").is_file());
    ro.close().unwrap();
    let store = DataStore::open(&path).unwrap();
    assert_eq!(store.len(), 20_000);
    store.close().unwrap();
}
