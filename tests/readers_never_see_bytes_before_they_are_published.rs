//! The soundness argument of the writable map, tested where it would break.
//!
//! The writer copies each entry into a shared writable map of space
//! reserved after the tail, and only then publishes it (readable mark,
//! index, tail). Readers only ever read bytes below the published tail,
//! which the writer never writes again; the writer only writes above it.
//!
//! Here a writer overwrites a few keys again and again (single writes and
//! atomic batches, some values of a megabyte whose copy takes a while)
//! while reader threads poll the key being overwritten at this very moment,
//! by handle, borrowed, and by iterating. Every read must find the key
//! (it exists throughout) with a complete value of one of its versions.
//! Were an entry published before its bytes were in place (reorder the copy
//! and the publication in the write path to see this test fail), the index
//! would point at bytes still zero: the key would vanish for a moment, or
//! a value would come back half copied.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mmblob::DataStore;

/// Keys overwritten round-robin.
const KEYS: u64 = 16;
const WRITES: u64 = 6_000;

fn key(k: u64) -> [u8; 8] {
    k.to_le_bytes()
}

/// Whether version `v` gets a large value, whose copy takes long enough
/// for a reader polling for it to run into it.
fn is_big(v: u64) -> bool {
    v % 128 == 77
}

fn value_len(v: u64) -> usize {
    let spread = 8 + (v.wrapping_mul(2_654_435_761) % 3000) as usize;
    if is_big(v) {
        (1 << 20) + spread
    } else {
        spread
    }
}

/// Byte `j` (after the 8-byte version number) of version `v`: never zero.
fn value_byte(v: u64, j: usize) -> u8 {
    ((v as usize).wrapping_mul(31).wrapping_add(j) % 255) as u8 + 1
}

/// Version `v` of a value: its number, then bytes that are never zero.
fn value(v: u64) -> Vec<u8> {
    let mut out = v.to_le_bytes().to_vec();
    out.extend((8..value_len(v)).map(|j| value_byte(v, j)));
    out
}

/// Whether `bytes` is a complete version of the value of key `k`. Looks at
/// a byte every 4 KiB and the last one first (a copy under way has not
/// reached them all), then at every byte.
fn is_version_of(k: u64, bytes: &[u8]) -> bool {
    let Some(v) = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
    else {
        return false;
    };
    v % KEYS == k
        && bytes.len() == value_len(v)
        && (8..bytes.len())
            .step_by(4096)
            .chain((bytes.len() > 8).then(|| bytes.len() - 1))
            .all(|j| bytes[j] == value_byte(v, j))
        && (8..bytes.len()).all(|j| bytes[j] == value_byte(v, j))
}

#[derive(Default)]
struct Seen {
    reads: u64,
    wrong: Vec<String>,
}

fn chase(store: &DataStore, announced: &AtomicU64, done: &AtomicBool, mode: u8) -> Seen {
    let mut seen = Seen::default();
    while !done.load(Ordering::Acquire) && seen.wrong.len() < 5 {
        seen.reads += 1;
        // Mostly the key being overwritten right now.
        let k = if seen.reads % 8 == 0 {
            seen.reads % KEYS
        } else {
            announced.load(Ordering::Acquire) % KEYS
        };
        let got = match mode {
            0 => store
                .read_with(&key(k), |b| is_version_of(k, b))
                .expect("read_with"),
            1 => store
                .read(&key(k))
                .expect("read")
                .map(|h| is_version_of(k, &h)),
            _ => {
                if seen.reads % 64 == 0 {
                    let mut found = 0;
                    for entry in store.iter_entries() {
                        let Ok(raw) = <[u8; 8]>::try_from(entry.key()) else {
                            seen.wrong
                                .push(format!("iteration yields key {:?}", entry.key()));
                            continue;
                        };
                        let k = u64::from_le_bytes(raw);
                        if !is_version_of(k, &entry) {
                            seen.wrong
                                .push(format!("iterated key {k} has a partial value"));
                        }
                        found += 1;
                    }
                    if found != KEYS {
                        seen.wrong.push(format!("iteration found {found} keys"));
                    }
                }
                store
                    .read_with(&key(k), |b| is_version_of(k, b))
                    .expect("read_with")
            }
        };
        match got {
            None => seen.wrong.push(format!("key {k} vanished")),
            Some(false) => seen.wrong.push(format!("key {k} has a partial value")),
            Some(true) => {}
        }
    }
    seen
}

#[test]
fn readers_never_see_bytes_before_they_are_published() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("race.mmblob");
    let store = Arc::new(DataStore::open(&path).expect("open"));
    for v in 0..KEYS {
        store.write(&key(v), &value(v)).expect("write");
    }
    let announced = Arc::new(AtomicU64::new(KEYS));
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3u8)
        .map(|mode| {
            let (store, announced, done) = (
                Arc::clone(&store),
                Arc::clone(&announced),
                Arc::clone(&done),
            );
            std::thread::spawn(move || chase(&store, &announced, &done, mode))
        })
        .collect();
    let mut v = KEYS;
    while v < KEYS + WRITES {
        announced.store(v, Ordering::Release);
        if v % 5 == 4 {
            // An atomic batch of three keys: all published together, last.
            let values = [value(v), value(v + 1), value(v + 2)];
            let keys = [key(v % KEYS), key((v + 1) % KEYS), key((v + 2) % KEYS)];
            store
                .batch_write(&[
                    (&keys[0], &values[0]),
                    (&keys[1], &values[1]),
                    (&keys[2], &values[2]),
                ])
                .expect("batch");
            v += 3;
        } else {
            store.write(&key(v % KEYS), &value(v)).expect("write");
            v += 1;
        }
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        let seen = reader.join().expect("reader thread");
        assert!(seen.wrong.is_empty(), "{:?}", seen.wrong);
        assert!(seen.reads > 0);
    }
    // The newest version of every key is there, in the store and reopened.
    let last = v;
    drop(store);
    let store = DataStore::open(&path).expect("reopen");
    assert_eq!(store.len() as u64, KEYS);
    for k in 0..KEYS {
        let newest = (0..last).rev().find(|v| v % KEYS == k).expect("written");
        assert_eq!(
            store.read(&key(k)).expect("read").as_deref(),
            Some(value(newest).as_slice())
        );
    }
}
