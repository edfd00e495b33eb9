//! `backup_to`: a full copy, then incremental appends of only the new
//! bytes (reporting the byte range), a full copy again after compaction,
//! consistent while writer threads go on, and typed refusals that leave
//! everything that is not an earlier backup of this store untouched.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mmblob::{DataStore, Error, OpenOptions};
use support::rng::value_for;

fn contents(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let store = OpenOptions::new().read_only(true).open(path).unwrap();
    assert!(store.verify().unwrap().damaged.is_empty());
    let mut all: Vec<_> = store
        .iter_entries()
        .map(|e| (e.key().to_vec(), e.as_slice().to_vec()))
        .collect();
    all.sort();
    all
}

fn small_value(key: &str) -> Vec<u8> {
    key.repeat(20).into_bytes()
}

/// The store file up to its logical end: while the writer is open, space
/// reserved for its next writes (zeros) may follow.
fn committed(store: &DataStore, path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    bytes.truncate(store.file_size().unwrap() as usize);
    bytes
}

fn write_keys(store: &DataStore, range: std::ops::Range<u32>) {
    for i in range {
        let key = format!("k{i}");
        store
            .write(key.as_bytes(), &value_for(key.as_bytes()))
            .unwrap();
    }
}

#[test]
fn full_then_incremental_then_full_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store.mmblob");
    let backup = dir.path().join("backup.mmblob");
    let store = DataStore::open(&store_path).unwrap();
    write_keys(&store, 0..100);

    let first = store.backup_to(&backup).unwrap();
    let size = store.file_size().unwrap();
    assert!(!first.incremental);
    assert_eq!((first.from, first.to), (0, size));
    assert_eq!(first.entries, 100);
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        committed(&store, &store_path)
    );
    assert_eq!(contents(&backup), contents(&store_path));

    // Nothing new: an empty incremental range.
    let again = store.backup_to(&backup).unwrap();
    assert!(again.incremental);
    assert_eq!((again.from, again.to, again.entries), (size, size, 0));

    write_keys(&store, 100..150);
    store.delete(b"k3").unwrap();
    let second = store.backup_to(&backup).unwrap();
    assert!(second.incremental);
    assert_eq!(second.from, first.to);
    assert_eq!(second.to, store.file_size().unwrap());
    assert_eq!(second.entries, 51);
    assert_eq!(second.bytes_copied(), second.to - second.from);
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        committed(&store, &store_path)
    );

    // Compaction gives the store a new id: the backup is replaced whole.
    store.compact().unwrap();
    write_keys(&store, 150..160);
    let third = store.backup_to(&backup).unwrap();
    assert!(!third.incremental);
    assert_eq!((third.from, third.to), (0, store.file_size().unwrap()));
    assert_ne!(third.store_id, first.store_id);
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        committed(&store, &store_path)
    );
    let restored = DataStore::open_existing(&backup).unwrap();
    assert_eq!(restored.len(), 159);
    assert!(restored.read(b"k3").unwrap().is_none());
    drop(restored);
    // The restored copy was opened (not written): still incremental.
    write_keys(&store, 160..170);
    assert!(store.backup_to(&backup).unwrap().incremental);
}

#[test]
fn a_torn_incremental_backup_is_cut_and_continued() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store.mmblob");
    let backup = dir.path().join("backup.mmblob");
    let store = DataStore::open(&store_path).unwrap();
    write_keys(&store, 0..20);
    let first = store.backup_to(&backup).unwrap();
    write_keys(&store, 20..40);
    // Simulate a backup killed halfway through appending.
    let full = committed(&store, &store_path);
    let half = (first.to as usize + full.len()) / 2;
    std::fs::write(&backup, &full[..half]).unwrap();
    let next = store.backup_to(&backup).unwrap();
    assert!(next.incremental);
    assert!(next.from >= first.to && next.from < half as u64, "{next:?}");
    assert_eq!(
        std::fs::read(&backup).unwrap(),
        committed(&store, &store_path)
    );
}

#[test]
fn every_write_acknowledged_before_the_call_is_in_a_backup_taken_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store.mmblob");
    let backup = dir.path().join("backup.mmblob");
    let store = Arc::new(DataStore::open(&store_path).unwrap());
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, acked, stop) = (Arc::clone(&store), Arc::clone(&acked), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0u64;
            // Enough writes to overlap every backup, few enough to stay quick.
            while !stop.load(Ordering::Relaxed) && i < 4000 {
                let key = format!("w{i}");
                store.write(key.as_bytes(), &small_value(&key)).unwrap();
                i += 1;
                acked.store(i, Ordering::Release);
            }
        })
    };
    for round in 0..8 {
        while acked.load(Ordering::Acquire) < 200 * (round + 1) {
            std::thread::yield_now();
        }
        let before = acked.load(Ordering::Acquire);
        let stats = store.backup_to(&backup).unwrap();
        assert_eq!(stats.incremental, round > 0);
        let copy = OpenOptions::new().read_only(true).open(&backup).unwrap();
        assert_eq!(
            copy.file_size().unwrap(),
            stats.to,
            "nothing torn, nothing cut"
        );
        assert!(copy.verify().unwrap().damaged.is_empty());
        for i in 0..before {
            let key = format!("w{i}");
            let got = copy.read(key.as_bytes()).unwrap();
            assert_eq!(
                got.as_deref(),
                Some(small_value(&key).as_slice()),
                "round {round}: {key} acknowledged before the backup is missing"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn anything_but_an_earlier_backup_of_this_store_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store.mmblob");
    let store = DataStore::open(&store_path).unwrap();
    write_keys(&store, 0..10);
    let store_bytes = committed(&store, &store_path);

    // The store itself, by its path, a symlink and a hard link.
    let link = dir.path().join("link.mmblob");
    std::os::unix::fs::symlink(&store_path, &link).unwrap();
    let hard = dir.path().join("hard.mmblob");
    std::fs::hard_link(&store_path, &hard).unwrap();
    for path in [&store_path, &link, &hard] {
        let err = store.backup_to(path).unwrap_err();
        assert!(matches!(err, Error::SameStore { .. }), "{path:?}: {err:?}");
    }

    // A directory.
    let subdir = dir.path().join("dir");
    std::fs::create_dir(&subdir).unwrap();
    assert!(matches!(
        store.backup_to(&subdir),
        Err(Error::NotAFile { .. })
    ));

    // A file that is not a store.
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, b"precious notes").unwrap();
    assert!(matches!(
        store.backup_to(&notes),
        Err(Error::NotAStore { .. })
    ));
    assert_eq!(std::fs::read(&notes).unwrap(), b"precious notes");

    // Another store.
    let other_path = dir.path().join("other.mmblob");
    let other = DataStore::open(&other_path).unwrap();
    other.write(b"mine", b"keep me").unwrap();
    drop(other);
    let other_bytes = std::fs::read(&other_path).unwrap();
    let err = store.backup_to(&other_path).unwrap_err();
    assert!(matches!(err, Error::DestinationInUse { .. }), "{err:?}");
    assert_eq!(std::fs::read(&other_path).unwrap(), other_bytes);

    // A backup that was written to since: diverged, refused.
    let backup = dir.path().join("backup.mmblob");
    store.backup_to(&backup).unwrap();
    let restored = DataStore::open(&backup).unwrap();
    restored.write(b"written in the copy", b"x").unwrap();
    // ...and while it is open for writing, it is locked.
    assert!(matches!(
        store.backup_to(&backup),
        Err(Error::Locked { .. })
    ));
    drop(restored);
    write_keys(&store, 10..20);
    let diverged = std::fs::read(&backup).unwrap();
    let err = store.backup_to(&backup).unwrap_err();
    assert!(matches!(err, Error::DestinationInUse { .. }), "{err:?}");
    assert_eq!(std::fs::read(&backup).unwrap(), diverged);

    // A read-only backup file, and a read-only directory.
    let ro_backup = dir.path().join("ro.mmblob");
    store.backup_to(&ro_backup).unwrap();
    let ro_bytes = std::fs::read(&ro_backup).unwrap();
    let mut perms = std::fs::metadata(&ro_backup).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&ro_backup, perms).unwrap();
    write_keys(&store, 20..30);
    let err = store.backup_to(&ro_backup).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err:?}");
    assert_eq!(std::fs::read(&ro_backup).unwrap(), ro_bytes);

    let ro_dir = dir.path().join("ro-dir");
    std::fs::create_dir(&ro_dir).unwrap();
    let mut perms = std::fs::metadata(&ro_dir).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&ro_dir, perms).unwrap();
    let err = store.backup_to(ro_dir.join("b.mmblob")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err:?}");
    assert!(!ro_dir.join("b.mmblob").exists());

    // The store itself was never touched by any of it.
    assert_eq!(
        &std::fs::read(&store_path).unwrap()[..store_bytes.len()],
        store_bytes.as_slice()
    );
}
