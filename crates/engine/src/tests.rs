//! Engine tests that need internal seams.

use crate::OpenOptions;

/// Every key hashes to the same value: the index must tell keys apart by
/// their stored bytes.
fn colliding_hash(_key: &[u8]) -> u64 {
    0x5eed_5eed_5eed_5eed
}

#[test]
fn keys_with_colliding_hashes_both_stay_readable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("collide.mmblob");
    let options = OpenOptions::new().key_hasher(colliding_hash);
    let store = options.open(&path).expect("open");
    for i in 0..200u32 {
        store
            .write(format!("key-{i}").as_bytes(), &i.to_le_bytes())
            .expect("write");
    }
    store.write(b"key-7", b"seven").expect("overwrite");
    assert!(store.delete(b"key-8").expect("delete"));
    let check = |store: &crate::DataStore| {
        assert_eq!(store.len(), 199);
        for i in 0..200u32 {
            let got = store.read(format!("key-{i}").as_bytes()).expect("read");
            match i {
                7 => assert_eq!(got.as_deref(), Some(&b"seven"[..])),
                8 => assert!(got.is_none()),
                _ => assert_eq!(got.as_deref(), Some(&i.to_le_bytes()[..])),
            }
        }
    };
    check(&store);
    drop(store);
    let store = options
        .open(&path)
        .expect("reopen rebuilds the index with collisions");
    check(&store);
    assert!(store.verify().expect("verify").is_ok());
}

#[test]
fn live_totals_follow_overwrites_within_and_across_batches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = OpenOptions::new()
        .open(dir.path().join("s.mmblob"))
        .expect("open");
    store
        .batch_write(&[(b"a", b"1"), (b"a", b"22"), (b"b", b"")])
        .expect("batch");
    assert_eq!(
        (store.stats().live_entries, store.stats().live_bytes),
        (2, 2)
    );
    store.write(b"a", b"333").expect("overwrite");
    assert_eq!(
        (store.stats().live_entries, store.stats().live_bytes),
        (2, 3)
    );
    store.rename(b"a", b"b").expect("rename onto existing");
    assert_eq!(
        (store.stats().live_entries, store.stats().live_bytes),
        (1, 3)
    );
    store.batch_delete(&[b"b", b"zz"]).expect("delete");
    assert_eq!(
        (store.stats().live_entries, store.stats().live_bytes),
        (0, 0)
    );
}

#[test]
fn compaction_refuses_while_open_skipped_unreadable_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    let store = OpenOptions::new().open(&path).expect("open");
    let mut ends = Vec::new();
    for i in 0..5u8 {
        ends.push(store.write(&[b'k', i], &[i; 100]).expect("write"));
    }
    drop(store);
    let mut bytes = std::fs::read(&path).expect("read");
    // The key_len field of entry 2's trailer: its structure no longer holds.
    bytes[usize::try_from(ends[2]).expect("offset") - 8] ^= 0x40;
    std::fs::write(&path, &bytes).expect("damage");
    let store = OpenOptions::new().open(&path).expect("open damaged");
    assert_eq!(store.damage().len(), 1);
    let err = store
        .compact()
        .expect_err("compaction would discard unreadable bytes");
    assert!(matches!(err, crate::Error::Corrupt { .. }), "{err}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        bytes,
        "store untouched"
    );
    assert_eq!(store.len(), 4);
}

#[test]
fn a_symlink_to_a_missing_file_is_an_error_not_a_loop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let link = dir.path().join("link.mmblob");
    std::os::unix::fs::symlink(dir.path().join("missing/target.mmblob"), &link).expect("symlink");
    let err = OpenOptions::new().open(&link).expect_err("dangling link");
    assert!(err.to_string().contains("symbolic link"), "{err}");
}
