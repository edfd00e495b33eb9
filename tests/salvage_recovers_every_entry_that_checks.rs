//! `DataStore::salvage` / `salvage_to` write every entry that still checks
//! into a new store: the newest intact version of each key, deletions
//! respected, batches whole; they report what was left behind (offsets, and
//! keys where they can be read), refuse to overwrite anything, and work
//! when the store cannot be opened because its header is damaged.

use std::collections::BTreeMap;
use std::path::Path;

use mmblob::{DamageKind, DataStore, Error, OpenOptions};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Writes, overwrites, deletes and a batch; returns the live model and the
/// end offset of every write of `watch` keys.
fn build(path: &Path) -> (Model, BTreeMap<Vec<u8>, u64>) {
    let store = DataStore::open(path).expect("create");
    let mut model = Model::new();
    let mut ends = BTreeMap::new();
    for i in 0..60u32 {
        let key = format!("k{:02}", i % 40).into_bytes();
        let value = vec![i as u8; 10 + (i as usize * 13) % 400];
        let end = store.write(&key, &value).expect("write");
        ends.insert(key.clone(), end);
        model.insert(key, value);
    }
    for i in [3u32, 7, 11] {
        let key = format!("k{i:02}").into_bytes();
        store.delete(&key).expect("delete");
        model.remove(&key);
    }
    let batch: Vec<(Vec<u8>, Vec<u8>)> = (0..5u8)
        .map(|i| (format!("batch-{i}").into_bytes(), vec![i; 200]))
        .collect();
    let refs: Vec<(&[u8], &[u8])> = batch
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    let end = store.batch_write(&refs).expect("batch");
    ends.insert(b"batch-4".to_vec(), end);
    model.extend(batch);
    store.write(b"tail", b"the last entry").expect("write");
    model.insert(b"tail".to_vec(), b"the last entry".to_vec());
    (model, ends)
}

fn contents(store: &DataStore) -> Model {
    store
        .iter_entries()
        .map(|e| (e.key().to_vec(), e.to_vec()))
        .collect()
}

/// Asserts two models are equal, naming the first key that differs.
fn assert_same(got: &Model, want: &Model, what: &str) {
    for (key, value) in want {
        match got.get(key) {
            Some(v) if v == value => {}
            Some(v) => panic!(
                "{what}: {:?} has {} bytes, want {}",
                String::from_utf8_lossy(key),
                v.len(),
                value.len()
            ),
            None => panic!("{what}: {:?} missing", String::from_utf8_lossy(key)),
        }
    }
    for key in got.keys() {
        assert!(
            want.contains_key(key),
            "{what}: {:?} should not be there",
            String::from_utf8_lossy(key)
        );
    }
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset as usize] ^= 0x20;
    std::fs::write(path, &bytes).expect("write");
}

#[test]
fn salvage_recovers_every_entry_that_checks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("damaged.mmblob");
    let (mut model, ends) = build(&src);
    // Damage the newest value of k25 (its older value must not come back)
    // and the value of the batch's last entry (the whole batch stays out).
    let k25 = ends[b"k25".as_slice()];
    flip(&src, k25 - 32 - 3 - 5);
    flip(&src, ends[b"batch-4".as_slice()] - 32 - 7 - 20);
    let before = std::fs::read(&src).expect("read");

    let dest = dir.path().join("salvaged.mmblob");
    let stats = DataStore::salvage(&src, &dest).expect("salvage");
    assert!(
        std::fs::read(&src).expect("read") == before,
        "salvage changed the source"
    );
    assert!(!stats.header_damaged);
    assert!(!stats.is_complete());
    // k25's newest value is damaged (its older value is not resurrected);
    // batch-4 has no intact version at all.
    assert_eq!(stats.keys_lost, vec![b"batch-4".to_vec(), b"k25".to_vec()]);
    let named: Vec<Vec<u8>> = stats
        .left_behind
        .iter()
        .flat_map(|d| d.keys().into_iter().map(<[u8]>::to_vec))
        .collect();
    for key in ["k25", "batch-0", "batch-1", "batch-2", "batch-3", "batch-4"] {
        assert!(
            named.contains(&key.as_bytes().to_vec()),
            "{key} not reported: {:?}",
            stats.left_behind
        );
    }
    assert!(stats.left_behind.iter().any(|d| d.range.end == k25));
    model.remove(b"k25".as_slice());
    for i in 0..5 {
        model.remove(format!("batch-{i}").as_bytes());
    }
    assert_eq!(stats.entries_copied, model.len() as u64);
    assert_eq!(stats.keys_deleted, 3);
    assert!(stats.versions_superseded >= 20);

    let salvaged = OpenOptions::new()
        .strict(true)
        .open(&dest)
        .expect("the copy is clean");
    assert_same(&contents(&salvaged), &model, "salvaged");
    assert!(salvaged.verify().expect("verify").is_ok());
}

#[test]
fn salvage_works_when_the_header_is_damaged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("damaged.mmblob");
    let (model, _) = build(&src);
    let clean = std::fs::read(&src).expect("read");
    // A reserved byte (header checksum fails), the header checksum itself,
    // a bit of the store id, the magic.
    for (i, offset) in [30usize, 61, 19, 2].into_iter().enumerate() {
        let mut bytes = clean.clone();
        bytes[offset] ^= 0x08;
        std::fs::write(&src, &bytes).expect("damage the header");
        assert!(
            DataStore::open(&src).is_err(),
            "byte {offset}: the store opens"
        );
        let dest = dir.path().join(format!("salvaged-{i}.mmblob"));
        let stats = DataStore::salvage(&src, &dest).expect("salvage a store that cannot open");
        assert!(stats.header_damaged, "byte {offset}");
        assert!(
            stats.left_behind.is_empty(),
            "byte {offset}: {:?}",
            stats.left_behind
        );
        let salvaged = DataStore::open(&dest).expect("open the copy");
        assert_same(&contents(&salvaged), &model, &format!("byte {offset}"));
        assert!(
            std::fs::read(&src).expect("read") == bytes,
            "the source changed"
        );
    }
}

#[test]
fn salvage_refuses_to_overwrite_anything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("s.mmblob");
    let (model, _) = build(&src);
    let store = DataStore::open(&src).expect("open");
    assert!(matches!(
        store.salvage_to(&src),
        Err(Error::SameStore { .. })
    ));
    let link = dir.path().join("hard-link.mmblob");
    std::fs::hard_link(&src, &link).expect("link");
    assert!(matches!(
        store.salvage_to(&link),
        Err(Error::SameStore { .. })
    ));
    let other = dir.path().join("other.txt");
    std::fs::write(&other, b"precious").expect("write");
    let err = store
        .salvage_to(&other)
        .expect_err("a non-empty file is refused");
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert_eq!(std::fs::read(&other).expect("read"), b"precious");
    // An empty file is a new store.
    let empty = dir.path().join("empty.mmblob");
    std::fs::write(&empty, b"").expect("write");
    let stats = store
        .salvage_to(&empty)
        .expect("salvage into an empty file");
    assert!(stats.is_complete());
    assert_same(
        &contents(&DataStore::open(&empty).expect("open")),
        &model,
        "empty",
    );
}

#[test]
fn an_unfinished_batch_at_the_end_is_not_salvaged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("s.mmblob");
    let (model, _) = build(&src);
    let committed = std::fs::metadata(&src).expect("meta").len();
    {
        let store = DataStore::open(&src).expect("open");
        store
            .batch_write(&[
                (b"u1".as_slice(), [1u8; 100].as_slice()),
                (b"u2", &[2; 100]),
            ])
            .expect("batch");
    }
    // Cut inside the second entry: the first checks but its batch is unfinished.
    let full = std::fs::metadata(&src).expect("meta").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&src)
        .and_then(|f| f.set_len(full - 40))
        .expect("cut");
    let dest = dir.path().join("salvaged.mmblob");
    let stats = DataStore::salvage(&src, &dest).expect("salvage");
    assert_same(
        &contents(&DataStore::open(&dest).expect("open")),
        &model,
        "unfinished",
    );
    assert!(stats.left_behind.iter().any(|d| d.range.start >= committed));
    assert!(stats.left_behind.iter().any(|d| matches!(&d.kind,
        DamageKind::IncompleteBatch { keys } if keys == &vec![b"u1".to_vec()])));
}
