//! Thousands of random writes, overwrites, deletes, batches, mixed batches
//! of writes and deletes, renames, compactions and reopens behave exactly
//! like a `HashMap`.

use std::collections::HashMap;
use std::path::Path;

use mmblob::{DataStore, Error};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Write(u8, Vec<u8>),
    Batch(Vec<(u8, Vec<u8>)>),
    Delete(u8),
    BatchDelete(Vec<u8>),
    /// One `WriteBatch` of writes (`Some`) and deletes (`None`).
    Mixed(Vec<(u8, Option<Vec<u8>>)>),
    Rename(u8, u8),
    Compact,
    Reopen,
}

fn key(k: u8) -> Vec<u8> {
    format!("key/{k}").into_bytes()
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(vec![0u8]),
        prop::collection::vec(any::<u8>(), 1..200),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..24, value()).prop_map(|(k, v)| Op::Write(k, v)),
        2 => prop::collection::vec((0u8..24, value()), 0..6).prop_map(Op::Batch),
        2 => (0u8..24).prop_map(Op::Delete),
        1 => prop::collection::vec(0u8..24, 0..5).prop_map(Op::BatchDelete),
        2 => prop::collection::vec((0u8..24, prop::option::of(value())), 0..8).prop_map(Op::Mixed),
        1 => (0u8..24, 0u8..24).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn apply(store: &DataStore, model: &mut HashMap<Vec<u8>, Vec<u8>>, op: &Op) {
    match op {
        Op::Write(k, v) => {
            store.write(&key(*k), v).expect("write");
            model.insert(key(*k), v.clone());
        }
        Op::Batch(entries) => {
            let keys: Vec<Vec<u8>> = entries.iter().map(|(k, _)| key(*k)).collect();
            let batch: Vec<(&[u8], &[u8])> = keys
                .iter()
                .zip(entries)
                .map(|(k, (_, v))| (k.as_slice(), v.as_slice()))
                .collect();
            store.batch_write(&batch).expect("batch");
            for (k, (_, v)) in keys.into_iter().zip(entries) {
                model.insert(k, v.clone());
            }
        }
        Op::Delete(k) => {
            let existed = store.delete(&key(*k)).expect("delete");
            assert_eq!(existed, model.remove(&key(*k)).is_some());
        }
        Op::BatchDelete(ks) => {
            let keys: Vec<Vec<u8>> = ks.iter().map(|k| key(*k)).collect();
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let removed = store.batch_delete(&refs).expect("batch delete");
            let expected = keys.iter().filter(|k| model.remove(*k).is_some()).count();
            assert_eq!(removed, expected);
        }
        Op::Mixed(ops) => {
            let mut batch = store.batch();
            let (mut written, mut deleted) = (0, 0);
            for (k, v) in ops {
                match v {
                    Some(v) => {
                        batch.write(key(*k), v.as_slice());
                        model.insert(key(*k), v.clone());
                        written += 1;
                    }
                    None => {
                        batch.delete(key(*k));
                        deleted += usize::from(model.remove(&key(*k)).is_some());
                    }
                }
            }
            let done = batch.commit().expect("mixed batch");
            assert_eq!((done.written, done.deleted), (written, deleted));
        }
        Op::Rename(a, b) => match store.rename(&key(*a), &key(*b)) {
            Ok(()) => {
                let v = model
                    .remove(&key(*a))
                    .expect("rename succeeded so the key existed");
                model.insert(key(*b), v);
            }
            Err(Error::KeyNotFound { .. }) => assert!(!model.contains_key(&key(*a))),
            Err(e) => panic!("rename failed: {e}"),
        },
        Op::Compact | Op::Reopen => {}
    }
}

fn assert_matches(store: &DataStore, model: &HashMap<Vec<u8>, Vec<u8>>) {
    assert_eq!(store.len(), model.len());
    for (k, v) in model {
        let got = store.read(k).expect("read").expect("model key present");
        assert_eq!(&*got, v.as_slice());
    }
    // Every key the operations use, live or not, through the batch and
    // session reads too.
    let all: Vec<Vec<u8>> = (0..24).map(key).collect();
    let all: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
    let session = store.reader();
    for (k, handle) in all.iter().zip(store.batch_read(&all).expect("batch read")) {
        let expected = model.get(*k).map(Vec::as_slice);
        assert_eq!(handle.as_deref(), expected);
        assert_eq!(session.get(k).expect("session read"), expected);
    }
    let mut listed: Vec<Vec<u8>> = store.keys().collect();
    listed.sort();
    let mut expected: Vec<Vec<u8>> = model.keys().cloned().collect();
    expected.sort();
    assert_eq!(listed, expected);
    let stats = store.stats();
    assert_eq!(stats.live_entries, model.len() as u64);
    assert_eq!(
        stats.live_bytes,
        model.values().map(|v| v.len() as u64).sum::<u64>()
    );
}

fn run(path: &Path, ops: &[Op]) {
    let mut store = DataStore::open(path).expect("open");
    let mut model = HashMap::new();
    for op in ops {
        apply(&store, &mut model, op);
        match op {
            Op::Reopen => {
                drop(store);
                store = DataStore::open(path).expect("reopen");
                assert_matches(&store, &model);
            }
            Op::Compact => {
                store.compact().expect("compact");
                assert_matches(&store, &model);
            }
            _ => {}
        }
    }
    assert_matches(&store, &model);
    drop(store);
    let store = DataStore::open(path).expect("final reopen");
    assert_matches(&store, &model);
    assert!(store.verify().expect("verify").is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn store_matches_model(ops in prop::collection::vec(op(), 1..200)) {
        let dir = tempfile::tempdir().expect("temp dir");
        run(&dir.path().join("model.mmblob"), &ops);
    }
}
