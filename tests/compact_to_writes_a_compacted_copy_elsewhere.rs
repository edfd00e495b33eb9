//! `compact_to` writes the live entries into a new store at another path
//! and leaves the store itself byte for byte alone; it refuses to replace
//! anything that exists.

use mmblob::{DataStore, Error, OpenOptions};

#[test]
fn compacted_copy_holds_the_live_entries_and_the_store_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.mmblob");
    let store = DataStore::open(&path).unwrap();
    for i in 0..50u32 {
        store
            .write(format!("k{i}").as_bytes(), &[i as u8; 100])
            .unwrap();
    }
    for i in 0..25u32 {
        store
            .write(format!("k{i}").as_bytes(), &[0xAA; 10])
            .unwrap();
    }
    store.delete(b"k49").unwrap();
    store.namespace("ns").unwrap().write(b"x", b"y").unwrap();
    let before = std::fs::read(&path).unwrap();

    let copy_path = dir.path().join("copy.mmblob");
    let stats = store.compact_to(&copy_path).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the store is untouched"
    );
    assert_eq!(stats.entries_kept, 50);
    assert_eq!(stats.entries_dropped, 50 + 25 + 1 + 1 - 50);
    // The logical end: while the writer is open, the file may also hold
    // space reserved for its next writes.
    assert_eq!(stats.bytes_before, store.file_size().unwrap());
    assert!(stats.bytes_before <= before.len() as u64);
    assert_eq!(
        stats.bytes_after,
        std::fs::metadata(&copy_path).unwrap().len()
    );
    assert!(stats.bytes_after < stats.bytes_before);

    let copy = DataStore::open_existing(&copy_path).unwrap();
    assert_eq!(copy.len(), store.len());
    for entry in store.iter_entries() {
        assert_eq!(
            copy.read(entry.key()).unwrap().unwrap().as_slice(),
            entry.as_slice()
        );
    }
    assert_eq!(copy.namespaces().unwrap(), ["ns"]);
    assert!(copy.verify().unwrap().damaged.is_empty());
    drop(copy);

    // A read-only handle can make a compacted copy too.
    let ro = OpenOptions::new().read_only(true).open(&path).unwrap();
    ro.compact_to(dir.path().join("copy2.mmblob")).unwrap();

    // Existing destinations are refused and left alone.
    let err = store.compact_to(&copy_path).unwrap_err();
    assert!(matches!(err, Error::DestinationInUse { .. }), "{err:?}");
    assert!(matches!(
        store.compact_to(&path),
        Err(Error::SameStore { .. })
    ));
    assert!(matches!(
        store.compact_to(dir.path()),
        Err(Error::NotAFile { .. })
    ));
    let notes = dir.path().join("notes");
    std::fs::write(&notes, b"keep").unwrap();
    assert!(store.compact_to(&notes).is_err());
    assert_eq!(std::fs::read(&notes).unwrap(), b"keep");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}
