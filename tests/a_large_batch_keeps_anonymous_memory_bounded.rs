//! A 256 MiB batch of 4 KiB values grows anonymous memory (RssAnon) by
//! less than 48 MiB, written with `batch_write` and again as a mixed
//! `WriteBatch` that also deletes every key of the first: the batch is
//! encoded and written a chunk at a time, so the only memory that grows with
//! it is a few dozen bytes per entry, never a copy of its bytes.
//!
//! This file holds a single test so that it runs alone in its own process
//! and no other test's allocations count against it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mmblob::DataStore;

mod support;
use support::memory::rss_anon;

const MIB: u64 = 1 << 20;
const VALUE_LEN: usize = 4096;
const ENTRIES: usize = (256 * MIB) as usize / VALUE_LEN;
const LIMIT: u64 = 48 * MIB;

/// Samples RssAnon every millisecond while `f` runs; returns the peak.
fn peak_while(f: impl FnOnce()) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_anon()));
    let sampler = {
        let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_anon(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    f();
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler thread");
    peak.load(Ordering::Relaxed).max(rss_anon())
}

fn key(prefix: u8, i: usize) -> [u8; 16] {
    let mut k = [prefix; 16];
    k[8..].copy_from_slice(&(i as u64).to_le_bytes());
    k
}

#[test]
fn a_256_mib_batch_grows_rss_anon_by_less_than_48_mib() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = DataStore::open(dir.path().join("big.mmblob")).expect("open");
    store
        .write(b"small", b"warms up the allocator")
        .expect("write");
    // Every entry borrows the same value: the caller's own memory for the
    // batch is its keys and the list of pairs, made before measuring.
    let values: Vec<Vec<u8>> = (0..4u8)
        .map(|b| vec![b.wrapping_mul(37) | 1; VALUE_LEN])
        .collect();
    let first: Vec<[u8; 16]> = (0..ENTRIES).map(|i| key(b'a', i)).collect();
    let second: Vec<[u8; 16]> = (0..ENTRIES).map(|i| key(b'b', i)).collect();
    let pairs: Vec<(&[u8], &[u8])> = first
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_slice(), values[i % 4].as_slice()))
        .collect();
    let mut mixed = store.batch();
    mixed.reserve(2 * ENTRIES);
    for (i, (new, old)) in second.iter().zip(&first).enumerate() {
        mixed.write(new, &values[(i + 1) % 4]);
        mixed.delete(old);
    }

    let baseline = rss_anon();
    let written_peak = peak_while(|| {
        store.batch_write(&pairs).expect("batch_write");
    });
    assert_eq!(store.len(), ENTRIES + 1);
    let baseline_mixed = rss_anon();
    let mut outcome = None;
    let mixed_peak = peak_while(|| outcome = Some(mixed.commit().expect("commit")));
    let outcome = outcome.expect("committed");
    assert_eq!((outcome.written, outcome.deleted), (ENTRIES, ENTRIES));
    assert_eq!(store.len(), ENTRIES + 1);
    assert!(store.file_size().expect("size") > 512 * MIB);
    for i in [0, ENTRIES / 2, ENTRIES - 1] {
        assert!(!store.exists(&first[i]).expect("exists"));
        let value = store.read(&second[i]).expect("read").expect("there");
        assert_eq!(*value, *values[(i + 1) % 4]);
    }

    let grown = written_peak.saturating_sub(baseline);
    let grown_mixed = mixed_peak.saturating_sub(baseline_mixed);
    eprintln!(
        "RssAnon baseline {} KiB, growth: batch_write {} KiB, mixed batch {} KiB",
        baseline / 1024,
        grown / 1024,
        grown_mixed / 1024
    );
    assert!(grown < LIMIT, "batch_write grew RssAnon by {grown} bytes");
    assert!(
        grown_mixed < LIMIT,
        "the mixed batch grew RssAnon by {grown_mixed} bytes"
    );
}
