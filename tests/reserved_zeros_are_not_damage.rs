//! The zeros a writer reserves after the last entry are not damage: a
//! read-only open (and `verify`, `stat`) of a store whose writer is open
//! reports nothing for them and leaves them alone, a writable open gives
//! them back, and a damaged last batch followed by zeros (a crash with a
//! reservation in place) is still reported as damage, not cut.

use std::path::Path;
use std::process::{Command, Output};

use mmblob::{DataStore, OpenOptions};
use serde_json::Value;

fn mmblob(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmblob"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("MMBLOB_STORE")
        .env_remove("RUST_LOG")
        .output()
        .expect("run mmblob")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn value(store: &DataStore, key: &[u8]) -> Option<Vec<u8>> {
    store
        .read(key)
        .expect("read")
        .map(|h| h.as_slice().to_vec())
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}

#[test]
fn a_writers_reservation_is_neither_torn_nor_damaged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.mmblob");
    let writer = DataStore::open(&path).expect("create");
    for i in 0..50u32 {
        writer
            .write(format!("key-{i}").as_bytes(), &[i as u8; 300])
            .expect("write");
    }
    writer
        .batch_write(&[(b"a", b"1"), (b"b", b"2")])
        .expect("batch");
    let end = writer.file_size().expect("size");
    let len = file_len(&path);
    if len == end {
        eprintln!("skipped: no reservation (the filesystem cannot preallocate)");
        return;
    }
    assert!(len > end, "the file covers at least the entries");

    let reader = OpenOptions::new()
        .read_only(true)
        .open(&path)
        .expect("read-only open");
    assert_eq!(reader.file_size().expect("size"), end);
    assert!(reader.damage().is_empty(), "{:?}", reader.damage());
    assert_eq!(reader.stats().torn_bytes, 0);
    let report = reader.verify().expect("verify");
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.torn_bytes(), 0, "{report:?}");
    assert_eq!(value(&reader, b"b"), Some(b"2".to_vec()));
    drop(reader);

    let verify = mmblob(&path, &["verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
    let stat: Value =
        serde_json::from_slice(&mmblob(&path, &["--json", "stat"]).stdout).expect("JSON");
    assert_eq!(stat["torn_bytes"], 0, "{stat}");
    assert_eq!(file_len(&path), len, "read-only commands leave the file");

    drop(writer);
    assert_eq!(file_len(&path), end, "a clean close trims the reservation");
}

#[test]
fn a_writable_open_gives_the_zeros_back_without_reporting_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.mmblob");
    let store = DataStore::open(&path).expect("create");
    store.write(b"k", b"v").expect("write");
    let end = store.file_size().expect("size");
    drop(store);
    // What a writer killed between writes leaves behind.
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.resize(bytes.len() + (3 << 20) + 5, 0);
    std::fs::write(&path, &bytes).expect("write zeros");

    let reader = OpenOptions::new()
        .read_only(true)
        .open(&path)
        .expect("read-only open");
    assert!(reader.damage().is_empty(), "{:?}", reader.damage());
    drop(reader);
    assert_eq!(file_len(&path), bytes.len() as u64, "read-only leaves them");

    let store = DataStore::open(&path).expect("open");
    assert!(store.damage().is_empty(), "{:?}", store.damage());
    assert_eq!(store.file_size().expect("size"), end);
    assert_eq!(value(&store, b"k"), Some(b"v".to_vec()));
    drop(store);
    assert_eq!(file_len(&path), end, "the writable open cut the zeros");
}

#[test]
fn a_damaged_last_batch_before_zeros_is_reported_not_cut() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.mmblob");
    let store = DataStore::open(&path).expect("create");
    for i in 0..10u8 {
        store
            .write(format!("file-{i}").as_bytes(), &[i; 500])
            .expect("write");
    }
    store
        .batch_write(&[(b"import/0", &[1u8; 300]), (b"import/1", &[2u8; 300])])
        .expect("batch");
    let end = store.file_size().expect("size");
    drop(store);
    let mut bytes = std::fs::read(&path).expect("read");
    let at = bytes.len() - 32 - "import/1".len() - 100;
    bytes[at] ^= 0x01;
    bytes.resize(bytes.len() + (1 << 20), 0);
    std::fs::write(&path, &bytes).expect("damage");

    let verify = mmblob(&path, &["verify"]);
    assert_eq!(verify.status.code(), Some(4), "{}", text(&verify.stderr));
    assert!(
        text(&verify.stdout).contains("import/1"),
        "{}",
        text(&verify.stdout)
    );

    let store = DataStore::open(&path).expect("open");
    assert_eq!(store.file_size().expect("size"), end, "nothing cut");
    let damage = store.damage();
    assert!(!damage.is_empty(), "the damaged batch is reported");
    assert!(damage.iter().all(|d| !d.is_torn_tail()), "{damage:?}");
    assert!(
        store.read(b"import/1").is_err(),
        "the damaged key reads as such"
    );
    assert!(
        !matches!(store.read(b"import/0"), Ok(Some(_))),
        "the batch is hidden whole"
    );
    drop(store);
    assert_eq!(file_len(&path), end, "only the zeros were given back");
}
