//! Batches: duplicates inside one batch, mixed batches of writes and
//! deletes through `DataStore::batch`, batches of hundreds of thousands of
//! keys, values larger than the writer's chunk, a batch cut short at every
//! point of its bytes (all or nothing), and a batch that runs out of disk
//! space half way through.

mod support;

use std::collections::HashMap;
use std::path::Path;

use mmblob::{DataStore, Error, OpenOptions};
use support::child;
use support::limits::limit_file_size;
use support::rng::Rng;

/// The writer's chunk (256 KiB); values around it take both write paths.
const CHUNK: usize = 256 * 1024;

fn key(i: u64) -> Vec<u8> {
    format!("key/{i:08}").into_bytes()
}

fn value(i: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(i ^ 0x5eed);
    rng.bytes(len)
}

fn open(path: &Path) -> DataStore {
    DataStore::open(path).expect("open")
}

fn assert_store_is(store: &DataStore, model: &HashMap<Vec<u8>, Vec<u8>>) {
    assert_eq!(store.len(), model.len(), "number of live keys");
    for (k, v) in model {
        let got = store.read(k).expect("read");
        assert_eq!(got.as_deref(), Some(v.as_slice()), "value of {k:?}");
    }
    for k in store.keys() {
        assert!(model.contains_key(&k), "{k:?} should not be there");
    }
    let stats = store.stats();
    assert_eq!(stats.live_entries, model.len() as u64);
    assert_eq!(
        stats.live_bytes,
        model.values().map(|v| v.len() as u64).sum::<u64>()
    );
}

#[test]
fn last_write_of_a_key_in_one_batch_wins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s");
    let store = open(&path);
    let entries: [(&[u8], &[u8]); 5] = [
        (b"a", b"1"),
        (b"b", b"2"),
        (b"a", b"3"),
        (b"b", b""),
        (b"a", b"4"),
    ];
    store.batch_write(&entries).expect("batch");
    assert_eq!(store.len(), 2);
    assert_eq!(store.read(b"a").expect("read").as_deref(), Some(&b"4"[..]));
    assert_eq!(store.read(b"b").expect("read").as_deref(), Some(&b""[..]));
    drop(store);
    let store = open(&path);
    assert_eq!(store.read(b"a").expect("read").as_deref(), Some(&b"4"[..]));
    assert_eq!(store.len(), 2);
    assert_eq!(store.stats().live_bytes, 1);
}

#[test]
fn a_key_deleted_twice_in_one_batch_counts_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("s"));
    store
        .batch_write(&[(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
        .expect("batch");
    let removed = store
        .batch_delete(&[b"a", b"missing", b"a", b"b", b"a", b"missing"])
        .expect("batch delete");
    assert_eq!(removed, 2);
    assert_eq!(store.len(), 1);
    assert!(store.exists(b"c").expect("exists"));
    // Deleting only missing keys writes nothing at all.
    let size = store.file_size().expect("size");
    assert_eq!(store.batch_delete(&[b"a", b"b", b"zz"]).expect("delete"), 0);
    assert_eq!(store.file_size().expect("size"), size);
}

#[test]
fn a_mixed_batch_applies_its_operations_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s");
    let store = open(&path);
    store
        .batch_write(&[(b"old", b"o"), (b"gone", b"g"), (b"back", b"b0")])
        .expect("batch");

    let owned_key = String::from("owned");
    let mut batch = store.batch();
    batch
        .write(b"new", b"n")
        .write(b"tmp", b"t") // written then deleted: must end up absent
        .delete(b"tmp")
        .delete(b"gone")
        .delete(b"gone") // counts once
        .delete(b"never") // missing: writes nothing
        .delete(b"back")
        .write(b"back", b"b1") // deleted then written: present
        .write(owned_key.clone(), vec![7u8; 3])
        .write(&owned_key, "borrowed str") // last write wins
        .write(b"old", b"o2");
    assert_eq!(batch.len(), 11);
    let done = batch.commit().expect("commit");
    assert_eq!(done.written, 6);
    assert_eq!(done.deleted, 3, "tmp, gone, back");
    assert_eq!(done.end, store.file_size().expect("size"));

    let model: HashMap<Vec<u8>, Vec<u8>> = [
        (&b"old"[..], &b"o2"[..]),
        (b"new", b"n"),
        (b"back", b"b1"),
        (b"owned", b"borrowed str"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_vec(), v.to_vec()))
    .collect();
    assert_store_is(&store, &model);
    drop(store);
    let store = open(&path);
    assert_store_is(&store, &model);
    assert!(store.verify().expect("verify").is_ok());
    store.compact().expect("compact");
    assert_store_is(&store, &model);
}

#[test]
fn an_empty_or_missing_only_batch_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("s"));
    let size = store.file_size().expect("size");
    let done = store.batch().commit().expect("empty commit");
    assert_eq!((done.written, done.deleted, done.end), (0, 0, size));
    let mut batch = store.batch();
    batch.delete(b"x").delete(b"y");
    assert!(!batch.is_empty());
    let done = batch.commit().expect("commit");
    assert_eq!((done.written, done.deleted, done.end), (0, 0, size));
    assert_eq!(store.batch_write(&[]).expect("empty"), size);
    assert_eq!(store.file_size().expect("size"), size);
}

#[test]
fn a_batch_with_one_bad_key_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s");
    let store = open(&path);
    store.write(b"keep", b"k").expect("write");
    let size = store.file_size().expect("size");
    let long = vec![b'x'; 70_000];
    let mut batch = store.batch();
    batch.write(b"a", b"1").delete(b"keep").write(long, b"v");
    assert!(matches!(
        batch.commit(),
        Err(Error::InvalidKey { len: 70_000 })
    ));
    let mut batch = store.batch();
    batch.write(b"a", b"1").delete(Vec::new());
    assert!(matches!(batch.commit(), Err(Error::InvalidKey { len: 0 })));
    assert_eq!(store.file_size().expect("size"), size);
    assert!(store.exists(b"keep").expect("exists"));
    assert!(!store.exists(b"a").expect("exists"));
    drop(store);

    let reader = OpenOptions::new()
        .read_only(true)
        .open(&path)
        .expect("read-only");
    let mut batch = reader.batch();
    batch.write(b"a", b"1");
    assert!(matches!(batch.commit(), Err(Error::ReadOnly { .. })));
}

/// 200,000 keys in one call of each batch operation, with duplicates:
/// the same results as a model, and the time is linear (the benchmark
/// `batches` measures it; this only has to finish).
#[test]
fn batches_of_200_000_keys_with_duplicates_match_a_model() {
    const KEYS: u64 = 200_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s");
    let store = open(&path);
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();

    // Every tenth key is written twice; the second value wins.
    let mut owned: Vec<(Vec<u8>, Vec<u8>)> = (0..KEYS)
        .map(|i| (key(i), value(i, (i % 100) as usize)))
        .collect();
    owned.extend((0..KEYS).step_by(10).map(|i| (key(i), value(i + KEYS, 7))));
    let entries: Vec<(&[u8], &[u8])> = owned
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    store.batch_write(&entries).expect("batch write");
    for (k, v) in &owned {
        model.insert(k.clone(), v.clone());
    }
    assert_store_is(&store, &model);

    let keys: Vec<Vec<u8>> = (0..KEYS + 1000).map(key).collect();
    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let handles = store.batch_read(&refs).expect("batch read");
    for (k, handle) in keys.iter().zip(&handles) {
        assert_eq!(handle.as_deref(), model.get(k).map(Vec::as_slice));
    }

    // Delete every other key, each one twice, plus keys that never existed.
    let doomed: Vec<&[u8]> = (0..KEYS + 1000)
        .step_by(2)
        .flat_map(|i| [refs[i as usize], refs[i as usize]])
        .collect();
    let removed = store.batch_delete(&doomed).expect("batch delete");
    assert_eq!(removed, (KEYS / 2) as usize);
    for k in doomed {
        model.remove(k);
    }
    assert_store_is(&store, &model);
    drop(store);
    let store = open(&path);
    assert_store_is(&store, &model);
}

/// Values below, at and well above the writer's chunk, mixed with small
/// ones and deletes in one batch, read back intact after a reopen.
#[test]
fn values_larger_than_a_chunk_round_trip_in_a_mixed_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s");
    let store = open(&path);
    store.write(b"victim", b"v").expect("write");
    let lens = [
        0,
        1,
        100,
        20_000,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        5,
        3 * CHUNK + 17,
        64,
        10 << 20,
    ];
    let values: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| value(i as u64, len))
        .collect();
    let mut model = HashMap::new();
    let mut batch = store.batch();
    for (i, v) in values.iter().enumerate() {
        batch.write(key(i as u64), v.as_slice());
        if i == 5 {
            batch.delete(b"victim");
        }
        model.insert(key(i as u64), v.clone());
    }
    let done = batch.commit().expect("commit");
    assert_eq!((done.written, done.deleted), (lens.len(), 1));
    assert_store_is(&store, &model);
    for i in 0..lens.len() {
        let entry = store.read(&key(i as u64)).expect("read").expect("there");
        assert!(entry.verify_checksum());
        if !entry.is_empty() {
            assert_eq!(entry.offset_range().start % 64, 0, "aligned payload");
        }
    }
    drop(store);
    let store = open(&path);
    assert_store_is(&store, &model);
    assert!(store.verify().expect("verify").is_ok());
}

/// A mixed batch cut short anywhere in its bytes (as by a crash) is
/// undone entirely at the next open: its writes are absent and its deletes
/// have not happened; a batch cut nowhere is there entirely.
#[test]
fn a_mixed_batch_cut_anywhere_is_all_or_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s");
    let store = open(&path);
    let before: HashMap<Vec<u8>, Vec<u8>> = (0..20).map(|i| (key(i), value(i, 300))).collect();
    for (k, v) in &before {
        store.write(k, v).expect("write");
    }
    let start = store.file_size().expect("size");
    let mut after = before.clone();
    let mut batch = store.batch();
    for i in 0..20u64 {
        if i % 3 == 0 {
            batch.delete(key(i));
            after.remove(&key(i));
        }
        // New keys: small ones, one above the chunk, one overwrite.
        let (k, v) = (
            key(100 + i),
            value(100 + i, if i == 7 { CHUNK + 999 } else { 1000 }),
        );
        batch.write(k.clone(), v.clone());
        after.insert(k, v);
    }
    batch.write(key(1), b"overwritten".to_vec());
    after.insert(key(1), b"overwritten".to_vec());
    let end = batch.commit().expect("commit").end;
    drop(store);
    let image = std::fs::read(&path).expect("read file");
    assert_eq!(image.len() as u64, end);

    let cut_path = dir.path().join("cut");
    let mut rng = Rng::new(17);
    let mut cuts: Vec<u64> = (0..60).map(|_| rng.range(start, end - 1)).collect();
    // Right after the first byte, right before the last trailer byte, and
    // the end of each of the first entries.
    cuts.extend([start + 1, end - 1, start + 64, start + 1000]);
    for cut in cuts {
        std::fs::write(&cut_path, &image[..cut as usize]).expect("write cut");
        let store = open(&cut_path);
        assert_store_is(&store, &before);
        assert_eq!(store.file_size().expect("size"), start, "cut at {cut}");
        // The cut bytes are reported as a torn tail, nothing else.
        let damage = store.damage();
        assert!(
            damage.iter().all(|d| d.is_torn_tail()),
            "cut at {cut}: {damage:?}"
        );
    }
    std::fs::write(&cut_path, &image).expect("write whole");
    assert_store_is(&open(&cut_path), &after);
}

/// Child: writes batches of several chunks under a small file-size limit
/// until one fails, and checks that the failure left nothing behind.
#[test]
fn child_batch_past_the_size_limit() {
    if child::role().as_deref() != Some("limited") {
        return;
    }
    // SAFETY: ignoring SIGXFSZ makes an over-long write fail with EFBIG
    // instead of killing the process; nothing else handles that signal.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let store = DataStore::open(child::store_path()).expect("open");
    for i in 0..10 {
        store.write(&key(i), &value(i, 1000)).expect("write");
    }
    let size = store.file_size().expect("size");
    limit_file_size(Some(size + 3 * CHUNK as u64 + 5000));
    let mut round = 0u64;
    let failed = loop {
        let before = store.file_size().expect("size");
        let mut batch = store.batch();
        batch.delete(key(round));
        for m in 0..100u64 {
            let id = 1000 + round * 100 + m;
            batch.write(key(id), value(id, if m == 50 { CHUNK * 2 } else { 4000 }));
        }
        match batch.commit() {
            Ok(_) => round += 1,
            Err(e) => break (e, before),
        }
    };
    let (err, before) = failed;
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_eq!(store.file_size().expect("size"), before, "tail moved");
    // Past the tail there may be space reserved for writes before the limit
    // was set: zeros, and nothing of the failed batch.
    let bytes = std::fs::read(child::store_path()).expect("read");
    assert!(bytes.len() as u64 >= before, "committed bytes were cut");
    assert!(
        bytes[before as usize..].iter().all(|&b| b == 0),
        "a partial batch is left in the file"
    );
    assert!(store.exists(&key(round)).expect("exists"), "delete applied");
    assert!(!store.exists(&key(1000 + round * 100)).expect("exists"));
    limit_file_size(None);
    store.write(b"after", b"room again").expect("write after");
    child::say(&format!("failed round {round}"));
}

#[test]
fn a_batch_that_runs_out_of_space_leaves_nothing_and_the_store_works() {
    if child::role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("limited.mmblob");
    let events =
        child::spawn("child_batch_past_the_size_limit", "limited", &path, 0).wait_success();
    let round: u64 = events
        .iter()
        .find_map(|e| e.strip_prefix("failed round ")?.parse().ok())
        .expect("the child reported its failing round");
    let store = open(&path);
    assert!(store.exists(&key(round)).expect("exists"));
    assert!(!store.exists(&key(1000 + round * 100)).expect("exists"));
    assert_eq!(
        store.read(b"after").expect("read").as_deref(),
        Some(&b"room again"[..])
    );
    assert!(store.verify().expect("verify").is_ok());
}

/// Entries with empty values lie closer together than 64 bytes: deleting
/// neighbours in one batch counts each of them, and each once.
#[test]
fn deleting_neighbouring_empty_values_counts_each_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir.path().join("s"));
    let keys: Vec<Vec<u8>> = (0..50).map(|i| vec![b'e', i]).collect();
    for k in &keys {
        store.write(k, b"").expect("write");
    }
    let mut doomed: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    doomed.extend(keys.iter().rev().map(Vec::as_slice));
    assert_eq!(store.batch_delete(&doomed).expect("delete"), keys.len());
    assert!(store.is_empty());
}
