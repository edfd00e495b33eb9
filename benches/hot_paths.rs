//! Micro-benchmarks of the hot paths: trailer codec, CRC, index lookup
//! (one key, and a thousand keys one by one or in one `batch_read`),
//! iteration and opening a store of a million entries.
//!
//! `cargo bench --bench hot_paths`

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mmblob::checksum::EntryCrc;
use mmblob::format::Trailer;
use mmblob::{DataStore, OpenOptions};

const ENTRIES: u64 = 1_000_000;

fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    k[8..].copy_from_slice(&i.to_le_bytes());
    k
}

/// A store of a million 16-byte keys with 64-byte values.
fn million_entry_store(dir: &Path) -> PathBuf {
    let path = dir.join("bench.mmblob");
    let store = DataStore::open(&path).expect("open");
    let value = [0x5au8; 64];
    let keys: Vec<[u8; 16]> = (0..ENTRIES).map(key).collect();
    for chunk in keys.chunks(1000) {
        let batch: Vec<(&[u8], &[u8])> = chunk
            .iter()
            .map(|k| (k.as_slice(), value.as_slice()))
            .collect();
        store.batch_write(&batch).expect("batch");
    }
    path
}

fn sidecar(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".index");
    PathBuf::from(name)
}

fn codec(c: &mut Criterion) {
    let trailer = Trailer {
        prev_end: 4096,
        key_hash: 0x1234_5678_9abc_def0,
        payload_len: 64,
        key_len: 16,
        flags: 0,
        crc: 0xdead_beef,
    };
    c.bench_function("trailer_encode", |b| {
        b.iter(|| black_box(black_box(&trailer).encode()))
    });
    let bytes = trailer.encode();
    c.bench_function("trailer_decode_and_layout", |b| {
        b.iter(|| Trailer::decode(black_box(&bytes)).layout(black_box(4096 + 64 + 16 + 32)))
    });
    let mib = vec![0xa5u8; 1 << 20];
    c.bench_function("crc_1mib", |b| {
        b.iter(|| {
            let mut crc = EntryCrc::new(7);
            crc.update(black_box(&mib));
            crc.finish_with(&trailer)
        })
    });
}

fn store_paths(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = million_entry_store(dir.path());
    let store = DataStore::open(&path).expect("open");
    let mut i = 0u64;
    c.bench_function("read_hit_1m", |b| {
        b.iter(|| {
            i = (i + 7_919) % ENTRIES;
            let entry = store.read(&key(i)).expect("read").expect("present");
            black_box(entry.iter().map(|&x| u64::from(x)).sum::<u64>())
        })
    });
    c.bench_function("read_miss_1m", |b| {
        b.iter(|| {
            i += 1;
            black_box(store.read(&key(ENTRIES + i)).expect("read").is_none())
        })
    });
    let mut group = c.benchmark_group("read_1000_scattered_1m");
    let mut next = 0u64;
    let mut scattered = || -> Vec<[u8; 16]> {
        (0..1000)
            .map(|_| {
                next = (next + 7_919) % ENTRIES;
                key(next)
            })
            .collect()
    };
    let sum = |entry: &[u8]| entry.iter().map(|&x| u64::from(x)).sum::<u64>();
    group.bench_function("read_one_by_one", |b| {
        b.iter_batched(
            &mut scattered,
            |keys| {
                keys.iter()
                    .map(|k| sum(&store.read(k).expect("read").expect("present")))
                    .sum::<u64>()
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("reader_get_handle", |b| {
        b.iter_batched(
            &mut scattered,
            |keys| {
                let reader = store.reader();
                keys.iter()
                    .map(|k| sum(&reader.get_handle(k).expect("read").expect("present")))
                    .sum::<u64>()
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("reader_get_borrowed", |b| {
        b.iter_batched(
            &mut scattered,
            |keys| {
                let reader = store.reader();
                keys.iter()
                    .map(|k| sum(reader.get(k).expect("read").expect("present")))
                    .sum::<u64>()
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("batch_read", |b| {
        b.iter_batched(
            &mut scattered,
            |keys| {
                let keys: Vec<&[u8]> = keys.iter().map(<[u8; 16]>::as_slice).collect();
                store
                    .batch_read(&keys)
                    .expect("batch read")
                    .iter()
                    .map(|entry| sum(entry.as_deref().expect("present")))
                    .sum::<u64>()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("iterate_1m");
    group.sample_size(10);
    group.bench_function("iter_entries", |b| {
        b.iter(|| {
            store
                .iter_entries()
                .map(|e| e.iter().map(|&x| u64::from(x)).sum::<u64>())
                .sum::<u64>()
        })
    });
    group.bench_function("for_each_entry", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            store.for_each_entry(|_, v| sum += v.iter().map(|&x| u64::from(x)).sum::<u64>());
            sum
        })
    });
    group.finish();
    drop(store);

    let mut group = c.benchmark_group("open_1m");
    group.sample_size(10);
    group.bench_function("with_index_snapshot", |b| {
        b.iter(|| DataStore::open(&path).expect("open").len())
    });
    std::fs::remove_file(sidecar(&path)).expect("remove sidecar");
    // Read-only handles never write a sidecar, so every open walks the chain.
    let read_only = OpenOptions::new().read_only(true);
    group.bench_function("walking_the_chain", |b| {
        b.iter(|| read_only.open(&path).expect("open").len())
    });
    group.finish();
}

criterion_group!(benches, codec, store_paths);
criterion_main!(benches);
