//! Batches of every size cost the same per key: 200,000 keys in one call
//! of `batch_write`, `batch_delete` and `batch_read` against the same keys
//! in calls of 1,000; and 1,000 values of 10 KB in one `batch_write`
//! against one `write` per value.
//!
//! `cargo bench --bench batches`

use std::hint::black_box;
use std::path::Path;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mmblob::DataStore;

const KEYS: usize = 200_000;
const SMALL_BATCH: usize = 1_000;

fn key(i: usize) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&(i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    k[8..].copy_from_slice(&(i as u64).to_le_bytes());
    k
}

/// A fresh store in `dir` (any earlier one removed first).
fn fresh(dir: &Path) -> DataStore {
    let path = dir.join("bench.mmblob");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(dir.join("bench.mmblob.index"));
    DataStore::open(&path).expect("open")
}

fn filled(dir: &Path, keys: &[[u8; 16]], value: &[u8]) -> DataStore {
    let store = fresh(dir);
    let pairs: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_slice(), value)).collect();
    store.batch_write(&pairs).expect("fill");
    store
}

fn sizes(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys: Vec<[u8; 16]> = (0..KEYS).map(key).collect();
    let value = [0x5au8; 64];
    let pairs: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_slice(), &value[..])).collect();
    let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();

    let mut group = c.benchmark_group("batch_write_200k");
    group.sample_size(10);
    group.bench_function("one_call", |b| {
        b.iter_batched(
            || fresh(dir.path()),
            |store| {
                store.batch_write(black_box(&pairs)).expect("write");
                store
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("calls_of_1000", |b| {
        b.iter_batched(
            || fresh(dir.path()),
            |store| {
                for chunk in pairs.chunks(SMALL_BATCH) {
                    store.batch_write(black_box(chunk)).expect("write");
                }
                store // dropped (saving its index sidecar) outside the timing
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();

    let mut group = c.benchmark_group("batch_delete_200k");
    group.sample_size(10);
    group.bench_function("one_call", |b| {
        b.iter_batched(
            || filled(dir.path(), &keys, &value),
            |store| {
                assert_eq!(store.batch_delete(black_box(&refs)).expect("delete"), KEYS);
                store
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("calls_of_1000", |b| {
        b.iter_batched(
            || filled(dir.path(), &keys, &value),
            |store| {
                for chunk in refs.chunks(SMALL_BATCH) {
                    store.batch_delete(black_box(chunk)).expect("delete");
                }
                store
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();

    let store = filled(dir.path(), &keys, &value);
    let mut group = c.benchmark_group("batch_read_200k");
    group.sample_size(10);
    group.bench_function("one_call", |b| {
        b.iter(|| store.batch_read(black_box(&refs)).expect("read").len());
    });
    group.bench_function("calls_of_1000", |b| {
        b.iter(|| {
            refs.chunks(SMALL_BATCH)
                .map(|chunk| store.batch_read(black_box(chunk)).expect("read").len())
                .sum::<usize>()
        });
    });
    group.finish();
}

/// 1,000 values of 10 KB (10 MB): one batch against one write per value.
fn large_values(c: &mut Criterion) {
    const VALUES: usize = 1_000;
    const LEN: usize = 10_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let keys: Vec<[u8; 16]> = (0..VALUES).map(key).collect();
    let values: Vec<Vec<u8>> = (0..VALUES).map(|i| vec![i as u8; LEN]).collect();
    let pairs: Vec<(&[u8], &[u8])> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    let mut group = c.benchmark_group("values_1000x10kb");
    group.sample_size(20);
    group.bench_function("one_batch_write", |b| {
        b.iter_batched(
            || fresh(dir.path()),
            |store| {
                store.batch_write(black_box(&pairs)).expect("write");
                store
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("one_write_per_value", |b| {
        b.iter_batched(
            || fresh(dir.path()),
            |store| {
                for (k, v) in &pairs {
                    store.write(black_box(k), black_box(v)).expect("write");
                }
                store
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, sizes, large_values);
criterion_main!(benches);
