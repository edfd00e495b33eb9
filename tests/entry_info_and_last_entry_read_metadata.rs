//! `entry_info` reports what a value's trailer says (length, offsets,
//! checksum, flags, key hash) and agrees with the handle and the file;
//! `last_entry` returns the newest live entry, skipping deletions and
//! overwrites, across reopens and compaction.

use mmblob::{DataStore, Error, checksum, format};

#[test]
fn entry_info_matches_the_handle_and_the_bytes_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = DataStore::open(&path).unwrap();
    store.write(b"first", b"x").unwrap();
    let end = store.write(b"key", &[7u8; 100]).unwrap();
    store.batch_write(&[(b"b1", b"1"), (b"b2", b"")]).unwrap();

    let info = store.entry_info(b"key").unwrap().unwrap();
    let handle = store.read(b"key").unwrap().unwrap();
    assert_eq!(info.key, b"key");
    assert_eq!(info.len, 100);
    assert_eq!(info.payload_range, handle.offset_range());
    assert_eq!(info.payload_range.start % 64, 0);
    assert_eq!(info.entry_range.end, end);
    assert_eq!(info.trailer_offset, end - format::TRAILER_LEN);
    assert_eq!(info.key_hash, checksum::key_hash(b"key"));
    assert_eq!(info.key_hash, handle.key_hash());
    assert!(!info.tombstone);
    assert!(!info.batch_continues);

    // The checksum is the one stored in the last 4 bytes of the trailer.
    let file = std::fs::read(&path).unwrap();
    let stored = u32::from_le_bytes(file[end as usize - 4..end as usize].try_into().unwrap());
    assert_eq!(info.checksum, stored);
    assert!(handle.verify_checksum());

    assert!(store.entry_info(b"b1").unwrap().unwrap().batch_continues);
    let empty = store.entry_info(b"b2").unwrap().unwrap();
    assert_eq!((empty.len, empty.batch_continues), (0, false));
    assert!(store.entry_info(b"missing").unwrap().is_none());
    store.delete(b"key").unwrap();
    assert!(store.entry_info(b"key").unwrap().is_none());
    assert!(matches!(
        store.entry_info(b""),
        Err(Error::InvalidKey { len: 0 })
    ));
}

#[test]
fn last_entry_is_the_newest_live_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = DataStore::open(&path).unwrap();
    assert!(store.last_entry().unwrap().is_none());
    store.write(b"a", b"1").unwrap();
    store.write(b"b", b"2").unwrap();
    assert_eq!(store.last_entry().unwrap().unwrap().key(), b"b");
    store.delete(b"b").unwrap();
    assert_eq!(store.last_entry().unwrap().unwrap().key(), b"a");
    store.write(b"c", b"3").unwrap();
    store.write(b"a", b"4").unwrap();
    let last = store.last_entry().unwrap().unwrap();
    assert_eq!((last.key(), last.as_slice()), (&b"a"[..], &b"4"[..]));
    // The newest entry overwritten by an older key's entry... by a batch.
    store.batch_write(&[(b"x", b"5"), (b"y", b"6")]).unwrap();
    assert_eq!(store.last_entry().unwrap().unwrap().key(), b"y");
    store.rename(b"y", b"z").unwrap();
    assert_eq!(store.last_entry().unwrap().unwrap().key(), b"z");
    drop(store);

    let store = DataStore::open_existing(&path).unwrap();
    assert_eq!(store.last_entry().unwrap().unwrap().key(), b"z");
    store.compact().unwrap();
    assert_eq!(store.last_entry().unwrap().unwrap().key(), b"z");
    store.batch_delete(&[b"z", b"x", b"a", b"c"]).unwrap();
    assert!(store.last_entry().unwrap().is_none());
    let ro = mmblob::OpenOptions::new()
        .read_only(true)
        .open(&path)
        .unwrap();
    assert!(ro.last_entry().unwrap().is_none());
}
