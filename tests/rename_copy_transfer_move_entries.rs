//! `rename` moves a value to another key atomically; `copy_to` and
//! `transfer_to` move values between stores, keeping key and bytes, and
//! refuse missing keys and copies of a store onto itself.

mod support;

use support::limits::limit_file_size;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use mmblob::{DataStore, Error, OpenOptions};

const MIB: usize = 1 << 20;

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn value(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn get(store: &DataStore, key: &[u8]) -> Option<Vec<u8>> {
    store.read(key).expect("read").map(|e| e.to_vec())
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}

fn read_only(path: &Path) -> DataStore {
    OpenOptions::new()
        .read_only(true)
        .open(path)
        .expect("open read-only")
}

fn assert_key_not_found(result: mmblob::Result<()>, key: &[u8]) {
    match result {
        Err(err @ Error::KeyNotFound { .. }) => {
            assert!(err.is_not_found());
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
            assert!(matches!(&err, Error::KeyNotFound { key: k } if k == key));
            assert_eq!(io::Error::from(err).kind(), io::ErrorKind::NotFound);
        }
        other => panic!("expected KeyNotFound, got {other:?}"),
    }
}

fn assert_same_store(result: mmblob::Result<()>) {
    match result {
        Err(err @ Error::SameStore { .. }) => {
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        other => panic!("expected SameStore, got {other:?}"),
    }
}

#[test]
fn rename_moves_the_value_and_replaces_an_existing_key() {
    let dir = temp_dir();
    let path = dir.path().join("s.mmblob");
    let store = DataStore::open(&path).expect("open");
    let big = value(3, 3 * MIB + 1);
    store.write(b"big", &big).expect("write");
    store.write(b"empty", b"").expect("write");
    store.write(b"target", b"to be replaced").expect("write");
    store.write(b"other", b"untouched").expect("write");
    let before = store.read(b"big").expect("read").expect("present");

    store
        .rename(b"big", b"target")
        .expect("rename onto existing key");
    assert_eq!(get(&store, b"big"), None);
    assert!(get(&store, b"target").as_deref() == Some(big.as_slice()));
    assert!(*before == *big, "a handle taken before is unchanged");
    store
        .rename(b"empty", b"new empty")
        .expect("rename empty value");
    assert_eq!(get(&store, b"new empty"), Some(Vec::new()));
    assert_eq!(get(&store, b"empty"), None);
    assert_eq!(store.len(), 3);
    let stats = store.stats();
    assert_eq!(stats.live_entries, 3);
    assert_eq!(stats.live_bytes, (big.len() + b"untouched".len()) as u64);

    // Renaming a key onto itself changes nothing.
    let size = store.file_size().expect("size");
    store
        .rename(b"other", b"other")
        .expect("rename onto itself");
    assert_eq!(get(&store, b"other").as_deref(), Some(&b"untouched"[..]));
    assert_eq!(store.file_size().expect("size"), size);

    drop(store);
    let store = DataStore::open_existing(&path).expect("reopen");
    assert!(store.verify().expect("verify").is_ok());
    assert_eq!(store.len(), 3);
    assert_eq!(get(&store, b"big"), None);
    assert_eq!(get(&store, b"empty"), None);
    assert!(get(&store, b"target").as_deref() == Some(big.as_slice()));
    assert_eq!(get(&store, b"new empty"), Some(Vec::new()));
    assert_eq!(get(&store, b"other").as_deref(), Some(&b"untouched"[..]));
}

#[test]
fn rename_of_a_missing_key_is_not_found_and_writes_nothing() {
    let dir = temp_dir();
    let path = dir.path().join("s.mmblob");
    let store = DataStore::open(&path).expect("open");
    store.write(b"present", b"v").expect("write");
    store.write(b"gone", b"v").expect("write");
    store.delete(b"gone").expect("delete");
    let size = file_len(&path);
    assert_key_not_found(store.rename(b"missing", b"present"), b"missing");
    assert_key_not_found(store.rename(b"gone", b"new"), b"gone");
    assert_key_not_found(store.rename(b"missing", b"missing"), b"missing");
    assert_eq!(file_len(&path), size);
    assert_eq!(get(&store, b"present").as_deref(), Some(&b"v"[..]));
    assert_eq!(get(&store, b"new"), None);
    assert!(matches!(
        store.rename(b"", b"x"),
        Err(Error::InvalidKey { len: 0 })
    ));
    assert!(matches!(
        store.rename(b"present", &vec![b'k'; 65_536]),
        Err(Error::InvalidKey { len: 65_536 })
    ));
    let reader = read_only(&path);
    assert!(matches!(
        reader.rename(b"present", b"x"),
        Err(Error::ReadOnly { .. })
    ));
}

#[test]
fn rename_is_atomic_across_a_torn_write() {
    let dir = temp_dir();
    let path = dir.path().join("s.mmblob");
    let store = DataStore::open(&path).expect("open");
    store.write(b"old", &value(1, 1000)).expect("write");
    store
        .write(b"new", b"previous value of new")
        .expect("write");
    let before_rename = store.file_size().expect("size");
    store.rename(b"old", b"new").expect("rename");
    let after_rename = store.file_size().expect("size");
    // The rename wrote the value under `new`, then a tombstone for `old`.
    let new_entry_end = store
        .read(b"new")
        .expect("read")
        .expect("present")
        .end_offset();
    assert!(before_rename < new_entry_end && new_entry_end < after_rename);
    drop(store);
    let bytes = std::fs::read(&path).expect("read file");

    // A crash that kept the first half of the rename, or part of the second,
    // must show the store as it was before the rename.
    for cut in [new_entry_end, new_entry_end + 1, after_rename - 1] {
        std::fs::write(&path, &bytes[..cut as usize]).expect("write torn copy");
        let store = DataStore::open(&path).expect("open torn copy");
        assert!(
            get(&store, b"old").as_deref() == Some(value(1, 1000).as_slice()),
            "cut at {cut}: old key back"
        );
        assert_eq!(
            get(&store, b"new").as_deref(),
            Some(&b"previous value of new"[..]),
            "cut at {cut}: new key as before"
        );
        assert_eq!(store.file_size().expect("size"), before_rename);
        drop(store);
    }
    std::fs::write(&path, &bytes).expect("restore");
    let store = DataStore::open(&path).expect("open");
    assert_eq!(get(&store, b"old"), None);
    assert!(get(&store, b"new").as_deref() == Some(value(1, 1000).as_slice()));
}

#[test]
fn copy_to_keeps_key_and_bytes_in_both_stores() {
    let dir = temp_dir();
    let (pa, pb) = (dir.path().join("a.mmblob"), dir.path().join("b.mmblob"));
    let a = DataStore::open(&pa).expect("open a");
    let b = DataStore::open(&pb).expect("open b");
    let big = value(7, 5 * MIB + 3);
    let binary_key = [0u8, 255, 0, 1];
    a.write_stream(b"big", &mut big.as_slice()).expect("write");
    a.write(b"empty", b"").expect("write");
    a.write(&binary_key, &[0]).expect("write");
    b.write(b"big", b"older value in b").expect("write");

    for key in [&b"big"[..], b"empty", &binary_key] {
        a.copy_to(key, &b).expect("copy");
    }
    for store in [&a, &b] {
        assert!(get(store, b"big").as_deref() == Some(big.as_slice()));
        assert_eq!(get(store, b"empty"), Some(Vec::new()));
        assert_eq!(get(store, &binary_key), Some(vec![0]));
        assert_eq!(store.len(), 3);
    }
    let copied = b.read(b"big").expect("read").expect("present");
    assert_eq!(copied.key(), b"big");
    assert!(copied.verify_checksum(), "checksum under b's store id");
    assert_eq!(copied.offset_range().start % 64, 0);
    drop((a, b, copied));

    let a = DataStore::open_existing(&pa).expect("reopen a");
    let b = DataStore::open_existing(&pb).expect("reopen b");
    for store in [&a, &b] {
        assert!(store.verify().expect("verify").is_ok());
        assert!(get(store, b"big").as_deref() == Some(big.as_slice()));
        assert_eq!(get(store, b"empty"), Some(Vec::new()));
    }
}

#[test]
fn transfer_to_moves_the_entry_out_of_the_source() {
    let dir = temp_dir();
    let (pa, pb) = (dir.path().join("a.mmblob"), dir.path().join("b.mmblob"));
    let a = DataStore::open(&pa).expect("open a");
    let b = DataStore::open(&pb).expect("open b");
    let big = value(9, 2 * MIB + 5);
    a.write(b"moving", &big).expect("write");
    a.write(b"staying", b"here").expect("write");
    let handle = a.read(b"moving").expect("read").expect("present");

    a.transfer_to(b"moving", &b).expect("transfer");
    assert_eq!(get(&a, b"moving"), None);
    assert!(get(&b, b"moving").as_deref() == Some(big.as_slice()));
    assert!(*handle == *big, "handles on the source stay valid");
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_key_not_found(a.transfer_to(b"moving", &b), b"moving");

    // And back again, onto nothing.
    b.transfer_to(b"moving", &a).expect("transfer back");
    assert!(get(&a, b"moving").as_deref() == Some(big.as_slice()));
    assert_eq!(get(&b, b"moving"), None);
    assert!(b.is_empty());
    drop((a, b));

    let a = DataStore::open_existing(&pa).expect("reopen a");
    let b = DataStore::open_existing(&pb).expect("reopen b");
    assert!(get(&a, b"moving").as_deref() == Some(big.as_slice()));
    assert_eq!(get(&a, b"staying").as_deref(), Some(&b"here"[..]));
    assert!(b.is_empty());
}

#[test]
fn missing_keys_are_not_found_and_change_neither_store() {
    let dir = temp_dir();
    let (pa, pb) = (dir.path().join("a.mmblob"), dir.path().join("b.mmblob"));
    let a = DataStore::open(&pa).expect("open a");
    let b = DataStore::open(&pb).expect("open b");
    a.write(b"deleted", b"v").expect("write");
    a.delete(b"deleted").expect("delete");
    b.write(b"missing", b"only in b").expect("write");
    let sizes = (file_len(&pa), file_len(&pb));
    assert_key_not_found(a.copy_to(b"missing", &b), b"missing");
    assert_key_not_found(a.transfer_to(b"missing", &b), b"missing");
    assert_key_not_found(a.copy_to(b"deleted", &b), b"deleted");
    assert_key_not_found(a.transfer_to(b"deleted", &b), b"deleted");
    assert_eq!((file_len(&pa), file_len(&pb)), sizes);
    assert_eq!(get(&b, b"missing").as_deref(), Some(&b"only in b"[..]));
}

#[test]
fn copying_a_store_onto_itself_is_refused() {
    let dir = temp_dir();
    let path = dir.path().join("s.mmblob");
    let store = DataStore::open(&path).expect("open");
    store.write(b"k", b"v").expect("write");
    let size = file_len(&path);
    assert_same_store(store.copy_to(b"k", &store));
    assert_same_store(store.transfer_to(b"k", &store));

    // A second handle on the same file is the same store, whichever way round.
    let reader = read_only(&path);
    assert_same_store(store.copy_to(b"k", &reader));
    assert_same_store(store.transfer_to(b"k", &reader));
    assert_same_store(reader.copy_to(b"k", &store));
    // ... also when opened through another name for the file.
    let link: PathBuf = dir.path().join("link.mmblob");
    std::os::unix::fs::symlink(&path, &link).expect("symlink");
    let linked = read_only(&link);
    assert_same_store(store.copy_to(b"k", &linked));
    assert_same_store(linked.copy_to(b"k", &store));

    assert_eq!(file_len(&path), size, "nothing written");
    assert_eq!(get(&store, b"k").as_deref(), Some(&b"v"[..]));
    assert_eq!(store.len(), 1);
}

#[test]
fn a_second_handle_is_still_the_same_store_after_compaction() {
    let dir = temp_dir();
    let path = dir.path().join("s.mmblob");
    let store = DataStore::open(&path).expect("open");
    store.write(b"k", b"old").expect("write");
    store.write(b"k", b"v").expect("write");
    let reader = read_only(&path);
    // Compaction renames a new file over the path; the reader has not
    // refreshed and still reads the old one.
    store.compact().expect("compact");
    let size = file_len(&path);
    assert_same_store(store.copy_to(b"k", &reader));
    assert_same_store(reader.copy_to(b"k", &store));
    assert_eq!(file_len(&path), size, "nothing written");
    reader.refresh().expect("refresh");
    assert_same_store(reader.copy_to(b"k", &store));
}

#[test]
fn copies_into_read_only_targets_and_transfers_from_read_only_sources_are_refused() {
    let dir = temp_dir();
    let (pa, pb) = (dir.path().join("a.mmblob"), dir.path().join("b.mmblob"));
    let a = DataStore::open(&pa).expect("open a");
    let b = DataStore::open(&pb).expect("open b");
    a.write(b"k", b"v").expect("write");
    let b_reader = read_only(&pb);
    assert!(matches!(
        a.copy_to(b"k", &b_reader),
        Err(Error::ReadOnly { .. })
    ));
    assert!(matches!(
        a.transfer_to(b"k", &b_reader),
        Err(Error::ReadOnly { .. })
    ));
    assert_eq!(get(&a, b"k").as_deref(), Some(&b"v"[..]), "source kept");
    let a_reader = read_only(&pa);
    assert!(matches!(
        a_reader.transfer_to(b"k", &b),
        Err(Error::ReadOnly { .. })
    ));
    assert!(b.is_empty(), "nothing copied by a refused transfer");
    // Copying out of a read-only handle is fine.
    a_reader.copy_to(b"k", &b).expect("copy from a reader");
    assert_eq!(get(&b, b"k").as_deref(), Some(&b"v"[..]));
}

#[test]
fn copy_streams_values_larger_than_one_chunk_exactly() {
    let dir = temp_dir();
    let (pa, pb) = (dir.path().join("a.mmblob"), dir.path().join("b.mmblob"));
    let a = DataStore::open(&pa).expect("open a");
    let b = DataStore::open(&pb).expect("open b");
    for (i, len) in [MIB - 1, MIB, MIB + 1, 3 * MIB].into_iter().enumerate() {
        let key = format!("v{len}");
        a.write(key.as_bytes(), &value(i as u8, len))
            .expect("write");
        a.copy_to(key.as_bytes(), &b).expect("copy");
        let mut copied = Vec::new();
        b.read(key.as_bytes())
            .expect("read")
            .expect("present")
            .stream()
            .read_to_end(&mut copied)
            .expect("stream");
        assert!(copied == value(i as u8, len), "{len} bytes");
    }
}

#[test]
fn a_value_written_during_a_transfer_stays_in_the_source() {
    use std::sync::{Arc, Barrier};
    let dir = temp_dir();
    let a = Arc::new(DataStore::open(dir.path().join("a.mmblob")).expect("open a"));
    let b = DataStore::open(dir.path().join("b.mmblob")).expect("open b");
    let newer = value(2, 4096);
    // Another thread overwrites the key while it is being transferred. The
    // newer value was never copied, so it must survive somewhere: in `a`.
    for round in 0..300u32 {
        let key = format!("k{round}").into_bytes();
        a.write(&key, &value(1, 64 * 1024)).expect("write");
        let barrier = Arc::new(Barrier::new(2));
        let overwrite = {
            let (a, key, newer, barrier) = (
                Arc::clone(&a),
                key.clone(),
                newer.clone(),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                barrier.wait();
                a.write(&key, &newer).expect("overwrite");
            })
        };
        barrier.wait();
        a.transfer_to(&key, &b).expect("transfer");
        overwrite.join().expect("writer");
        let in_a = get(&a, &key);
        let in_b = get(&b, &key);
        assert!(
            in_a.as_deref() == Some(newer.as_slice()) || in_b.as_deref() == Some(newer.as_slice()),
            "round {round}: the value written during the transfer is gone"
        );
        assert!(in_b.is_some(), "round {round}: something was transferred");
    }
}

const ENV_FULL_DISK_DIR: &str = "MMBLOB_TEST_FULL_DISK_DIR";

/// Run in a child process by `copies_that_fail_midway_leave_both_stores_consistent`:
/// the file-size limit it sets applies to the whole process.
#[test]
#[ignore = "run in a child process by copies_that_fail_midway_leave_both_stores_consistent"]
fn child_copies_onto_a_full_disk() {
    let Some(dir) = std::env::var_os(ENV_FULL_DISK_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let (pa, pb) = (dir.join("a.mmblob"), dir.join("b.mmblob"));
    let a = DataStore::open(&pa).expect("open a");
    let b = DataStore::open(&pb).expect("open b");
    let big = value(4, 3 * MIB);
    a.write(b"big", &big).expect("write");
    a.write(b"small", b"fits").expect("write");
    b.write(b"existing", b"in b").expect("write");
    // Reopened, `a` holds no space reserved for later writes (a clean close
    // trims it), so its next write needs the room the limit denies.
    drop(a);
    let a = DataStore::open(&pa).expect("reopen a");
    let (a_bytes, b_len) = (std::fs::read(&pa).expect("read a"), file_len(&pb));
    let b_end = b.file_size().expect("size");

    // SAFETY: ignoring SIGXFSZ installs no handler; a write past the limit
    // then fails with EFBIG instead of killing the process.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    // Room for 1 MiB more in `b`; `a` is already past the limit.
    limit_file_size(Some(b_len + MIB as u64));

    // The copy fails after writing part of the value into `b`.
    let err = a.copy_to(b"big", &b).expect_err("no room for the copy");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    let err = a
        .transfer_to(b"big", &b)
        .expect_err("no room for the transfer");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(file_len(&pb) <= b_len, "b did not grow");
    assert_eq!(b.file_size().expect("size"), b_end);
    support::files::assert_only_reserved_space_after(&pb, b_end, "b after the failed copies");
    assert_eq!(
        get(&b, b"big"),
        None,
        "nothing of the failed copy is visible"
    );
    assert!(
        get(&a, b"big").as_deref() == Some(big.as_slice()),
        "a keeps it"
    );
    assert_eq!(std::fs::read(&pa).expect("read a"), a_bytes, "a unchanged");

    // The copy fits but the delete in `a` does not: the key is in both
    // stores, never in neither.
    let err = a
        .transfer_to(b"small", &b)
        .expect_err("no room for the delete");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(get(&a, b"small").as_deref(), Some(&b"fits"[..]));
    assert_eq!(get(&b, b"small").as_deref(), Some(&b"fits"[..]));
    b.delete(b"small").expect("delete in b");

    // With room again everything works.
    limit_file_size(None);
    a.transfer_to(b"big", &b).expect("transfer with room");
    a.transfer_to(b"small", &b).expect("transfer with room");
    drop((a, b));
    let a = DataStore::open_existing(&pa).expect("reopen a");
    let b = DataStore::open_existing(&pb).expect("reopen b");
    for store in [&a, &b] {
        assert!(store.damage().is_empty());
        assert!(store.verify().expect("verify").is_ok());
    }
    assert!(a.is_empty(), "both keys moved out of a");
    assert!(get(&b, b"big").as_deref() == Some(big.as_slice()));
    assert_eq!(get(&b, b"small").as_deref(), Some(&b"fits"[..]));
    assert_eq!(get(&b, b"existing").as_deref(), Some(&b"in b"[..]));
    println!("child finished");
}

#[test]
fn copies_that_fail_midway_leave_both_stores_consistent() {
    let dir = temp_dir();
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_copies_onto_a_full_disk",
            "--nocapture",
            "--include-ignored",
        ])
        .env(ENV_FULL_DISK_DIR, dir.path())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("child finished"),
        "child failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
