//! A write interrupted at any byte is cut off on open; everything before it
//! stays intact and the store keeps accepting writes.

use std::path::Path;

use mmblob::DataStore;

fn committed(i: u32) -> (Vec<u8>, Vec<u8>) {
    let key = format!("key-{i}").into_bytes();
    let value = vec![i as u8; (i as usize * 37) % 300];
    (key, value)
}

fn build(path: &Path, entries: u32) -> u64 {
    let store = DataStore::open(path).expect("open");
    for i in 0..entries {
        let (key, value) = committed(i);
        store.write(&key, &value).expect("write");
    }
    store.file_size().expect("size")
}

fn assert_committed_intact(store: &DataStore, entries: u32) {
    assert_eq!(store.len(), entries as usize);
    for i in 0..entries {
        let (key, value) = committed(i);
        let got = store
            .read(&key)
            .expect("read")
            .expect("committed entry present");
        assert_eq!(&*got, value.as_slice(), "entry {i}");
    }
}

/// Opens a copy of `bytes`; checks the cut and that the store still works.
fn open_copy(dir: &Path, bytes: &[u8], committed_end: u64, entries: u32) {
    let path = dir.join("copy.mmblob");
    std::fs::write(&path, bytes).expect("write copy");
    let store = DataStore::open(&path).expect("open torn copy");
    assert_eq!(
        store.file_size().expect("size"),
        committed_end,
        "torn bytes cut off"
    );
    assert_committed_intact(&store, entries);
    store
        .write(b"after", b"the cut")
        .expect("write after recovery");
    drop(store);
    let store = DataStore::open(&path).expect("reopen");
    assert_committed_intact_plus_one(&store, entries);
}

fn assert_committed_intact_plus_one(store: &DataStore, entries: u32) {
    assert_eq!(
        &*store.read(b"after").expect("read").expect("present"),
        b"the cut"
    );
    assert_eq!(store.len(), entries as usize + 1);
}

#[test]
fn last_entry_cut_at_every_byte_length() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.mmblob");
    let committed_end = build(&path, 20);
    let store = DataStore::open(&path).expect("open");
    store.write(b"torn-key", &[0xAB; 200]).expect("write last");
    drop(store);
    let full = std::fs::read(&path).expect("read file");
    for cut in committed_end as usize..full.len() {
        open_copy(dir.path(), &full[..cut], committed_end, 20);
    }
}

#[test]
fn batch_cut_at_every_byte_length_is_all_or_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.mmblob");
    let committed_end = build(&path, 5);
    let store = DataStore::open(&path).expect("open");
    let values = [vec![1u8; 70], vec![], vec![3u8; 5]];
    store
        .batch_write(&[
            (b"b1", &values[0]),
            (b"b2", &values[1]),
            (b"b3", &values[2]),
        ])
        .expect("batch");
    drop(store);
    let full = std::fs::read(&path).expect("read file");
    for cut in committed_end as usize..full.len() {
        let copy = dir.path().join("copy.mmblob");
        std::fs::write(&copy, &full[..cut]).expect("write copy");
        let store = DataStore::open(&copy).expect("open torn copy");
        for key in [b"b1", b"b2", b"b3"] {
            assert!(
                store.read(key).expect("read").is_none(),
                "cut at {cut}: batch partly visible"
            );
        }
        assert_committed_intact(&store, 5);
        assert_eq!(store.file_size().expect("size"), committed_end);
    }
    let store = DataStore::open(&path).expect("open whole");
    assert_eq!(store.len(), 8, "the complete batch is visible");
}

#[test]
fn garbage_after_the_last_entry_is_cut() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.mmblob");
    let committed_end = build(&path, 30);
    let clean = std::fs::read(&path).expect("read file");
    let trailer_copy = clean[clean.len() - 32..].to_vec();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let random: Vec<u8> = (0..5000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    for garbage in [
        vec![0u8; 4096],
        random,
        trailer_copy.repeat(10),
        b"\n".to_vec(),
    ] {
        let mut bytes = clean.clone();
        bytes.extend_from_slice(&garbage);
        open_copy(dir.path(), &bytes, committed_end, 30);
    }
}

#[test]
fn large_store_with_a_mebibyte_of_garbage_opens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.mmblob");
    let store = DataStore::open(&path).expect("open");
    let keys: Vec<[u8; 8]> = (0..200_000u64).map(u64::to_le_bytes).collect();
    for chunk in keys.chunks(1000) {
        let batch: Vec<(&[u8], &[u8])> =
            chunk.iter().map(|k| (k.as_slice(), k.as_slice())).collect();
        store.batch_write(&batch).expect("batch");
    }
    let committed_end = store.file_size().expect("size");
    drop(store);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.extend((0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(&path, &bytes).expect("append garbage");
    let store = DataStore::open(&path).expect("open with garbage");
    assert_eq!(store.file_size().expect("size"), committed_end);
    assert_eq!(store.len(), 200_000);
    assert_eq!(
        &*store
            .read(&199_999u64.to_le_bytes())
            .expect("read")
            .expect("present"),
        &199_999u64.to_le_bytes()
    );
}
