//! Readers on other threads keep seeing whole, correct values, by handle
//! and borrowed (`read_with`), while the store swaps its map under them:
//! when the file outgrows its address-space reservation and when
//! compaction moves everything to a new file. Old maps are released only
//! after the last reader is done with them (a reader of an unmapped map
//! would crash this test).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use mmblob::DataStore;

const KEYS: u64 = 64;

fn value_for(i: u64) -> Vec<u8> {
    let mut out = i.to_le_bytes().to_vec();
    out.resize(100 + (i % 300) as usize, (i % 251) as u8);
    out
}

fn fresh_store(dir: &tempfile::TempDir) -> Arc<DataStore> {
    let store = Arc::new(DataStore::open(dir.path().join("s")).expect("open"));
    for i in 0..KEYS {
        store.write(&i.to_le_bytes(), &value_for(i)).expect("write");
    }
    store
}

/// Two reader threads (one by handle, one borrowing) checking every key
/// until `done`; they return how many reads they made.
fn spawn_readers(store: &Arc<DataStore>, done: &Arc<AtomicBool>) -> Vec<JoinHandle<u64>> {
    (0..2)
        .map(|borrowing| {
            let (store, done) = (Arc::clone(store), Arc::clone(done));
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) {
                    let i = reads % KEYS;
                    let expected = value_for(i);
                    let same = if borrowing == 1 {
                        store.read_with(&i.to_le_bytes(), |value| value == expected.as_slice())
                    } else {
                        store
                            .read(&i.to_le_bytes())
                            .map(|h| h.map(|h| *h == *expected))
                    };
                    assert_eq!(same.expect("read"), Some(true), "key {i}");
                    reads += 1;
                }
                reads
            })
        })
        .collect()
}

fn stop(readers: Vec<JoinHandle<u64>>, done: &AtomicBool) {
    done.store(true, Ordering::Release);
    for reader in readers {
        assert!(reader.join().expect("reader thread") > 0);
    }
}

#[test]
fn reads_race_compactions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = fresh_store(&dir);
    let done = Arc::new(AtomicBool::new(false));
    let readers = spawn_readers(&store, &done);
    for round in 0..200u64 {
        let i = round % KEYS;
        store
            .write(&i.to_le_bytes(), &value_for(i))
            .expect("rewrite");
        store.compact().expect("compact");
    }
    stop(readers, &done);
    assert_eq!(store.len() as u64, KEYS);
}

#[test]
fn reads_race_the_file_outgrowing_its_map() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = fresh_store(&dir);
    let capacity_now = || {
        let handle = store
            .read(&0u64.to_le_bytes())
            .expect("read")
            .expect("key 0");
        handle.mapping().capacity()
    };
    let first_capacity = capacity_now();
    let done = Arc::new(AtomicBool::new(false));
    let readers = spawn_readers(&store, &done);
    // 100 MiB of other values: past the 64 MiB minimum reservation.
    let filler = vec![7u8; 1 << 20];
    for n in 0..100u64 {
        store
            .write(format!("filler-{n}").as_bytes(), &filler)
            .expect("write");
    }
    stop(readers, &done);
    assert!(
        capacity_now() > first_capacity,
        "the file was never re-mapped"
    );
}

#[test]
fn a_read_session_keeps_its_slices_through_compaction_and_re_maps() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = fresh_store(&dir);
    let reader = store.reader();
    let before: Vec<&[u8]> = (0..KEYS)
        .map(|i| reader.get(&i.to_le_bytes()).expect("get").expect("present"))
        .collect();
    // Overwrite every key, compact (a new file), then outgrow the map.
    for i in 0..KEYS {
        store.write(&i.to_le_bytes(), b"newer").expect("overwrite");
    }
    store.compact().expect("compact");
    let filler = vec![7u8; 1 << 20];
    for n in 0..70u64 {
        store
            .write(format!("filler-{n}").as_bytes(), &filler)
            .expect("write");
    }
    for (i, value) in (0..KEYS).zip(&before) {
        assert_eq!(*value, value_for(i).as_slice(), "slice of key {i} changed");
    }
    // The same session sees the writes that returned before each read.
    assert_eq!(
        reader.get(&3u64.to_le_bytes()).expect("get"),
        Some(&b"newer"[..])
    );
    assert_eq!(reader.get(b"absent").expect("get"), None);
    assert!(reader.get(b"").is_err(), "an empty key is an error");
}
