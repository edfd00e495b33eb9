//! Index lookups take no lock: they race the writer, which overwrites keys,
//! inserts keys that shift others along their probe paths, deletes keys
//! (shifting others back) and swaps in grown tables. Every lookup of a key
//! that is always live must still find it, with its own value, at least as
//! new as the last write that returned before the lookup began.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use mmblob::DataStore;

/// Keys that stay live the whole time.
const STABLE: u64 = 2_000;
/// Rounds of churn the writer makes.
const ROUNDS: u64 = 40;
/// Short-lived keys inserted, then deleted, per round.
const CHURN: u64 = 3_000;

fn stable_key(i: u64) -> [u8; 9] {
    let mut key = [b's'; 9];
    key[1..].copy_from_slice(&i.to_le_bytes());
    key
}

fn value(i: u64, version: u64) -> Vec<u8> {
    let mut out = i.to_le_bytes().to_vec();
    out.extend_from_slice(&version.to_le_bytes());
    out.resize(16 + (i % 40) as usize, 0xa5);
    out
}

/// The key and version a stable key's value records.
fn decode(bytes: &[u8]) -> (u64, u64) {
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    (word(0), word(8))
}

struct Shared {
    store: DataStore,
    /// Per stable key, the newest version whose write has returned.
    published: Vec<AtomicU64>,
    done: AtomicBool,
}

/// Checks one lookup's answer for stable key `i`, started when its
/// newest returned version was `floor`.
fn check(i: u64, floor: u64, found: Option<(u64, u64)>) {
    let (key, version) = found.unwrap_or_else(|| panic!("stable key {i} not found"));
    assert_eq!(key, i, "stable key {i} returned another key's value");
    assert!(
        version >= floor,
        "key {i}: version {version} older than returned write {floor}"
    );
}

fn spawn_reader(shared: &Arc<Shared>, way: u64) -> JoinHandle<u64> {
    let shared = Arc::clone(shared);
    std::thread::spawn(move || {
        let mut lookups = 0u64;
        while !shared.done.load(Ordering::Acquire) {
            // A fresh session now and then, so retired tables can be freed.
            let session = shared.store.reader();
            for n in 0..500 {
                let i = (lookups + n * 7) % STABLE;
                let floor = shared.published[i as usize].load(Ordering::Acquire);
                let key = stable_key(i);
                let found = match way {
                    0 => session.get(&key).expect("get").map(decode),
                    1 => shared.store.read(&key).expect("read").map(|h| decode(&h)),
                    _ => shared.store.read_with(&key, decode).expect("read_with"),
                };
                check(i, floor, found);
                assert!(
                    shared.store.exists(&key).expect("exists"),
                    "stable key {i} missing"
                );
            }
            lookups += 500;
        }
        lookups
    })
}

#[test]
fn lookups_racing_inserts_deletes_and_growth_always_find_live_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = DataStore::open(dir.path().join("s")).expect("open");
    for i in 0..STABLE {
        store.write(&stable_key(i), &value(i, 0)).expect("write");
    }
    let shared = Arc::new(Shared {
        store,
        published: (0..STABLE).map(|_| AtomicU64::new(0)).collect(),
        done: AtomicBool::new(false),
    });
    let readers: Vec<_> = (0..3).map(|way| spawn_reader(&shared, way)).collect();
    for round in 1..=ROUNDS {
        let churn: Vec<Vec<u8>> = (0..CHURN)
            .map(|n| format!("churn-{round}-{n}").into_bytes())
            .collect();
        let entries: Vec<(&[u8], &[u8])> = churn.iter().map(|k| (&k[..], &b"x"[..])).collect();
        for batch in entries.chunks(100) {
            shared.store.batch_write(batch).expect("churn insert");
        }
        for i in (round % 5..STABLE).step_by(5) {
            shared
                .store
                .write(&stable_key(i), &value(i, round))
                .expect("overwrite");
            shared.published[i as usize].store(round, Ordering::Release);
        }
        let keys: Vec<&[u8]> = churn.iter().map(|k| &k[..]).collect();
        for batch in keys.chunks(150) {
            shared.store.batch_delete(batch).expect("churn delete");
        }
    }
    shared.done.store(true, Ordering::Release);
    for reader in readers {
        assert!(reader.join().expect("reader thread") > 0);
    }
    assert_eq!(shared.store.len(), STABLE as usize);
}
