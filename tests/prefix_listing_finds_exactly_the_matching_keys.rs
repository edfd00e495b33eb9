//! `keys_with_prefix`, `entries_with_prefix` and `par_entries_with_prefix`
//! return exactly the live keys that start with the prefix (no deleted or
//! overwritten ones, each once), on small stores and on stores large
//! enough to be scanned in parallel.

use std::collections::BTreeSet;

use mmblob::DataStore;
use rayon::prelude::*;

fn sorted(keys: impl Iterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
    let mut v: Vec<_> = keys.collect();
    v.sort();
    v
}

fn check(store: &DataStore, prefix: &[u8]) {
    let want: BTreeSet<Vec<u8>> = store.keys().filter(|k| k.starts_with(prefix)).collect();
    let want: Vec<Vec<u8>> = want.into_iter().collect();
    let keys = sorted(store.keys_with_prefix(prefix));
    assert_eq!(keys, want, "keys_with_prefix({prefix:?})");
    let entries: Vec<_> = store.entries_with_prefix(prefix).collect();
    let entry_keys = sorted(entries.iter().map(|e| e.key().to_vec()));
    assert_eq!(entry_keys, want, "entries_with_prefix({prefix:?})");
    for entry in &entries {
        let read = store.read(entry.key()).unwrap().unwrap();
        assert_eq!(entry.as_slice(), read.as_slice());
    }
    let par = sorted(
        store
            .par_entries_with_prefix(prefix)
            .map(|e| e.key().to_vec())
            .collect::<Vec<_>>()
            .into_iter(),
    );
    assert_eq!(par, want, "par_entries_with_prefix({prefix:?})");
}

#[test]
fn small_store_lists_only_live_matching_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("s")).unwrap();
    for key in ["photos/a", "photos/b", "photos", "photo", "docs/x", "p"] {
        store.write(key.as_bytes(), key.as_bytes()).unwrap();
    }
    store.write(b"photos/a", b"newer").unwrap();
    store.delete(b"photos/b").unwrap();
    assert_eq!(
        sorted(store.keys_with_prefix(b"photos/")),
        vec![b"photos/a".to_vec()]
    );
    assert_eq!(
        store
            .entries_with_prefix(b"photos/")
            .next()
            .unwrap()
            .as_slice(),
        b"newer"
    );
    assert_eq!(
        sorted(store.keys_with_prefix(b"photo")),
        vec![b"photo".to_vec(), b"photos".to_vec(), b"photos/a".to_vec()]
    );
    assert_eq!(store.keys_with_prefix(b"zzz").count(), 0);
    assert_eq!(store.keys_with_prefix(b"").count(), store.len());
    for prefix in [&b""[..], b"p", b"photos/", b"docs", b"nothing"] {
        check(&store, prefix);
    }
}

#[test]
fn large_store_scanned_in_parallel_agrees_with_a_filter() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("s")).unwrap();
    let keys: Vec<String> = (0..70_000u32)
        .map(|i| format!("{}/{i:06}", ["a", "b", "ab", "c"][(i % 4) as usize]))
        .collect();
    for chunk in keys.chunks(5000) {
        let refs: Vec<(&[u8], &[u8])> = chunk
            .iter()
            .map(|k| (k.as_bytes(), &k.as_bytes()[..2]))
            .collect();
        store.batch_write(&refs).unwrap();
    }
    let deleted: Vec<&[u8]> = keys.iter().step_by(7).map(|k| k.as_bytes()).collect();
    store.batch_delete(&deleted).unwrap();
    let live_ab = (0..70_000u32).filter(|i| i % 4 == 2 && i % 7 != 0).count();
    assert_eq!(store.keys_with_prefix(b"ab/").count(), live_ab);
    for prefix in [&b"a"[..], b"ab/", b"c/0999", b"d"] {
        check(&store, prefix);
    }
}
