//! Entry handles count references on per-thread leases (biased reference
//! counting, see the `mmblob-entry` crate docs). These tests race what can
//! break that: handles made on one thread and cloned and dropped on others,
//! their owner thread merging its count (when the store retires a map and
//! when the thread exits) while other threads still count, compaction and
//! re-maps under readers, and the store dropped while handles live.
//!
//! Both directions of a miscount fail here: a count that ends too low
//! unmaps bytes that a handle still reads (wrong bytes, or a crash), and a
//! count that ends too high leaves the store file mapped after the last
//! handle is gone, which the checks of `/proc/self/maps` catch.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};

use mmblob::{DataStore, EntryHandle};
use rayon::prelude::*;

fn value_for(key: u64, version: u64) -> Vec<u8> {
    let mut out = key.to_le_bytes().to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.resize(
        16 + ((key * 7 + version) % 200) as usize,
        (key ^ version) as u8,
    );
    out
}

/// Key and version of a value written by `value_for`, checking the rest.
fn check(handle: &EntryHandle) -> (u64, u64) {
    let key = u64::from_le_bytes(handle.key().try_into().expect("8-byte key"));
    let stored_key = u64::from_le_bytes(handle[..8].try_into().expect("key prefix"));
    let version = u64::from_le_bytes(handle[8..16].try_into().expect("version"));
    assert_eq!(stored_key, key, "value of another key");
    assert_eq!(*handle, value_for(key, version)[..], "key {key} v{version}");
    (key, version)
}

/// How many maps of files in `dir` this process holds.
fn maps_of(dir: &Path) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let dir = dir.to_str().expect("utf-8 temp path");
    maps.lines().filter(|line| line.contains(dir)).count()
}

/// Waits (briefly) for the epoch collector to release replaced maps that
/// only it still holds, then returns how many maps of `dir` remain.
fn settled_maps_of(dir: &Path) -> usize {
    let nudge_dir = tempfile::tempdir().expect("temp dir");
    let nudge = DataStore::open(nudge_dir.path().join("nudge")).expect("open");
    nudge.write(b"k", b"v").expect("write");
    for _ in 0..200 {
        if maps_of(dir) == 0 {
            return 0;
        }
        // Reads pin and unpin the epoch, which lets the collector advance
        // and run the drops it deferred.
        for _ in 0..1_000 {
            let _ = nudge.read_with(b"k", <[u8]>::len);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    maps_of(dir)
}

#[test]
fn handles_made_on_one_thread_outlive_it_and_are_freed_by_the_last_holder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(DataStore::open(dir.path().join("s")).expect("open"));
    for key in 0..500u64 {
        store
            .write(&key.to_le_bytes(), &value_for(key, 0))
            .expect("write");
    }
    let (to_holders, from_owners) = mpsc::channel::<EntryHandle>();
    let from_owners = Arc::new(Mutex::new(from_owners));
    let start = Arc::new(Barrier::new(5));
    // Two holders take handles made by the owners, clone them a few times
    // and drop the clones while the owners keep counting and then exit.
    let holders: Vec<_> = (0..2)
        .map(|_| {
            let (from_owners, start) = (Arc::clone(&from_owners), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                let mut kept = Vec::new();
                loop {
                    let next = from_owners.lock().expect("channel").recv();
                    let Ok(handle) = next else { break };
                    let clones: Vec<EntryHandle> = (0..3).map(|_| handle.clone()).collect();
                    for clone in &clones {
                        check(clone);
                    }
                    if kept.len() < 300 {
                        kept.push(handle);
                    }
                }
                kept
            })
        })
        .collect();
    let owners: Vec<_> = (0..2u64)
        .map(|owner| {
            let (store, to_holders, start) =
                (Arc::clone(&store), to_holders.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                for round in 0..20u64 {
                    let mut mine = Vec::new();
                    for key in (owner..500).step_by(2) {
                        let handle = store.read(&key.to_le_bytes()).expect("read").expect("key");
                        to_holders.send(handle.clone()).expect("send");
                        mine.push(handle);
                    }
                    // Dropped here, on the owner, while holders still count.
                    for handle in mine.iter().step_by(3) {
                        check(handle);
                    }
                    if round == 10 {
                        // The owner merges its count in the middle of it all.
                        mmblob::release_thread_leases();
                    }
                }
                // The thread exits: its lease cache merges.
            })
        })
        .collect();
    drop(to_holders);
    start.wait();
    for owner in owners {
        owner.join().expect("owner thread");
    }
    // The store goes away and compaction would have moved the file: the
    // handles kept by the holders must still read their bytes.
    store.compact().expect("compact");
    drop(store);
    let kept: Vec<Vec<EntryHandle>> = holders
        .into_iter()
        .map(|h| h.join().expect("holder thread"))
        .collect();
    assert!(maps_of(dir.path()) > 0, "the kept handles hold their map");
    for handle in kept.iter().flatten() {
        check(handle);
    }
    drop(kept);
    assert_eq!(
        settled_maps_of(dir.path()),
        0,
        "a map is still held after every handle and the store were dropped"
    );
}

#[test]
fn readers_by_handle_race_writes_remaps_compactions_and_the_store_drop() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(DataStore::open(dir.path().join("s")).expect("open"));
    const KEYS: u64 = 256;
    for key in 0..KEYS {
        store
            .write(&key.to_le_bytes(), &value_for(key, 0))
            .expect("write");
    }
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3u64)
        .map(|reader| {
            let (store, done) = (Arc::clone(&store), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut held: Vec<EntryHandle> = Vec::new();
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) {
                    let key = (reads * 31 + reader) % KEYS;
                    match reader {
                        // Point reads (one by one and from a read session), a
                        // few kept across the writer's changes.
                        0 => {
                            let handle = if reads.is_multiple_of(2) {
                                store.read(&key.to_le_bytes()).expect("read")
                            } else {
                                store.reader().get_handle(&key.to_le_bytes()).expect("read")
                            };
                            let handle = handle.expect("every key stays live");
                            check(&handle);
                            if reads.is_multiple_of(97) {
                                held.push(handle);
                            }
                        }
                        // Batches.
                        1 => {
                            let keys: Vec<[u8; 8]> =
                                (0..16).map(|i| ((key + i) % KEYS).to_le_bytes()).collect();
                            let keys: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
                            for handle in store.batch_read(&keys).expect("batch") {
                                check(&handle.expect("every key stays live"));
                            }
                        }
                        // Whole scans, in parallel, handles kept past them.
                        _ => {
                            let seen: Vec<EntryHandle> = store
                                .par_iter_entries()
                                .filter(|e| e.key().len() == 8)
                                .collect();
                            assert!(seen.len() >= KEYS as usize / 2);
                            seen.iter().for_each(|e| {
                                check(e);
                            });
                            held.extend(seen.into_iter().take(5));
                        }
                    }
                    reads += 1;
                }
                for handle in &held {
                    check(handle);
                }
                held
            })
        })
        .collect();
    // The writer: new versions (the file outgrows its first 64 MiB
    // reservation, so the map is replaced), compactions, and finally the
    // store is dropped while readers still hold handles.
    let big = vec![7u8; 4 << 20];
    for version in 1..=60u64 {
        for key in (version % 4..KEYS).step_by(4) {
            store
                .write(&key.to_le_bytes(), &value_for(key, version))
                .expect("write");
        }
        store.write(b"filler", &big).expect("write filler");
        if version % 20 == 0 {
            store.compact().expect("compact");
        }
    }
    done.store(true, Ordering::Release);
    drop(store);
    let held: Vec<Vec<EntryHandle>> = readers
        .into_iter()
        .map(|r| r.join().expect("reader thread"))
        .collect();
    assert!(held.iter().flatten().count() > 0);
    for handle in held.iter().flatten() {
        check(handle);
    }
    drop(held);
    assert_eq!(
        settled_maps_of(dir.path()),
        0,
        "a map is still held after every handle and the store were dropped"
    );
}

#[test]
fn par_iter_entries_composes_and_matches_iter_entries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = DataStore::open(dir.path().join("s")).expect("open");
    // Dense (a block table) and then sparse (a sorted list) snapshots.
    for (count, pad) in [(20_000u64, 0usize), (3_000, 5_000)] {
        for key in 0..count {
            let mut value = value_for(key, count);
            value.resize(value.len() + pad, 1);
            store.write(&key.to_le_bytes(), &value).expect("write");
        }
        store.delete(&3u64.to_le_bytes()).expect("delete");
        let sequential: HashMap<Vec<u8>, Vec<u8>> = store
            .iter_entries()
            .map(|e| (e.key().to_vec(), e.to_vec()))
            .collect();
        let parallel: HashMap<Vec<u8>, Vec<u8>> = store
            .par_iter_entries()
            .map(|e| (e.key().to_vec(), e.to_vec()))
            .collect();
        assert_eq!(parallel.len(), store.len());
        assert_eq!(parallel, sequential);
        // Borrowed entries, sequential and parallel, and handles made from them.
        let entries = store.entries();
        assert_eq!(entries.len(), store.len());
        let lent: HashMap<Vec<u8>, Vec<u8>> = entries
            .iter()
            .map(|e| (e.key().to_vec(), e.value().to_vec()))
            .collect();
        assert_eq!(lent, sequential);
        let lent_parallel: HashMap<Vec<u8>, Vec<u8>> = entries
            .par_iter()
            .map(|e| (e.key().to_vec(), e.to_vec()))
            .collect();
        assert_eq!(lent_parallel, sequential);
        let kept: Vec<EntryHandle> = entries.par_iter().map(|e| e.to_handle()).collect();
        drop(entries);
        assert_eq!(kept.len(), sequential.len());
        for handle in &kept {
            assert_eq!(sequential[handle.key()], *handle.as_slice());
        }
        let keys: Vec<Vec<u8>> = store.keys().collect();
        assert_eq!(keys.len(), store.len());
        let even = store
            .par_iter_entries()
            .filter(|e| e.key()[0] % 2 == 0)
            .fold(|| 0usize, |n, _| n + 1)
            .sum::<usize>();
        assert_eq!(even, sequential.keys().filter(|k| k[0] % 2 == 0).count());
        // Stopping early (find_any) stops every piece.
        let found = store
            .par_iter_entries()
            .find_any(|e| e.key() == 17u64.to_le_bytes());
        assert_eq!(
            found.map(|e| e.key().to_vec()),
            Some(17u64.to_le_bytes().to_vec())
        );
    }
}

#[test]
fn handles_stay_static_clone_send_and_sync() {
    fn assert_traits<T: 'static + Clone + Send + Sync>() {}
    assert_traits::<EntryHandle>();
    assert_traits::<mmblob::EntryStream>();
    fn assert_send<T: Send>() {}
    assert_send::<mmblob::EntryIter>();
    assert_send::<mmblob::ParEntryIter>();
    assert_send::<mmblob::Entries>();
    fn assert_sync<T: Sync>() {}
    assert_sync::<mmblob::Entries>();
}
