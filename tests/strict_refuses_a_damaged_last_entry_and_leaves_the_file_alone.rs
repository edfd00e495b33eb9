//! `OpenOptions::strict(true)` on a store whose last entry (or an entry of
//! its last batch) fails its checksum refuses with `Error::Corrupt` and
//! leaves the file byte for byte as it was, modification time included.

use std::path::Path;
use std::time::{Duration, SystemTime};

use mmblob::{DataStore, Error, OpenOptions};

/// A store of ten single writes and, when `batch`, a last batch of three.
fn build(path: &Path, batch: bool) -> Vec<(u64, u64)> {
    let store = DataStore::open(path).expect("create");
    let mut spans = Vec::new();
    let mut start = store.file_size().expect("size");
    for i in 0..10u8 {
        let end = store.write(&[b'k', i], &[i; 150]).expect("write");
        spans.push((start, end));
        start = end;
    }
    if batch {
        let values = [vec![1u8; 300], vec![2u8; 300], vec![3u8; 300]];
        store
            .batch_write(&[
                (b"b1", &values[0]),
                (b"b2", &values[1]),
                (b"b3", &values[2]),
            ])
            .expect("batch");
    } else {
        store.write(b"last", &[7u8; 200]).expect("write last");
    }
    spans
}

/// Flips a bit at `offset`, sets an old mtime, opens strict and checks
/// that nothing changed.
fn assert_refused_untouched(path: &Path, offset: usize, read_only: bool) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset] ^= 0x10;
    std::fs::write(path, &bytes).expect("damage");
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(old))
        .expect("set mtime");
    let err = OpenOptions::new()
        .strict(true)
        .read_only(read_only)
        .open(path)
        .expect_err("strict must refuse a damaged last entry");
    assert!(
        matches!(err, Error::Corrupt { .. }),
        "byte {offset}: expected Corrupt, got {err:?}"
    );
    let after = std::fs::read(path).expect("read");
    assert_eq!(
        after.len(),
        bytes.len(),
        "byte {offset}: the file length changed"
    );
    assert!(after == bytes, "byte {offset}: the file was changed");
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(mtime, old, "byte {offset}: the modification time changed");
}

#[test]
fn strict_refuses_a_damaged_last_entry_and_leaves_the_file_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    build(&path, false);
    let clean = std::fs::read(&path).expect("read");
    let len = clean.len();
    // Payload, key and checksum bytes of the last entry.
    for offset in [len - 250, len - 100, len - 40, len - 34, len - 2] {
        for read_only in [false, true] {
            std::fs::write(&path, &clean).expect("restore");
            assert_refused_untouched(&path, offset, read_only);
        }
    }
}

#[test]
fn strict_refuses_damage_in_any_entry_of_the_last_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    build(&path, true);
    let clean = std::fs::read(&path).expect("read");
    let len = clean.len();
    // A payload byte of each of the three batch entries (each entry is
    // 64-aligned padding + 300 value bytes + 2 key bytes + 32 trailer bytes).
    let third = len - 34 - 150;
    let second = third - 384;
    let first = second - 384;
    for offset in [first, second, third] {
        std::fs::write(&path, &clean).expect("restore");
        assert_refused_untouched(&path, offset, false);
    }
}

#[test]
fn strict_still_opens_a_store_with_a_torn_tail_and_cuts_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    build(&path, false);
    let clean = std::fs::read(&path).expect("read");
    let committed = {
        let store = OpenOptions::new()
            .read_only(true)
            .open(&path)
            .expect("open");
        store.file_size().expect("size")
    };
    // An interrupted write of one more entry: half of it reached the file.
    let mut torn = clean.clone();
    torn.extend_from_slice(&[0x5a; 90]);
    std::fs::write(&path, &torn).expect("write torn");
    let store = OpenOptions::new()
        .strict(true)
        .open(&path)
        .expect("a torn write is not damage");
    assert_eq!(store.file_size().expect("size"), committed);
    assert_eq!(store.len(), 11);
    drop(store);
    assert!(
        std::fs::read(&path).expect("read") == clean,
        "only the torn bytes were cut"
    );
}
