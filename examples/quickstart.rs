//! Writes, reads back zero-copy, iterates in parallel and reopens a store.
//!
//! `cargo run --release --example quickstart`

use std::time::Instant;

use mmblob::{DataStore, Result};
use rayon::prelude::*;

fn main() -> Result<()> {
    let dir =
        tempfile::tempdir().map_err(|e| mmblob::Error::io("creating a temporary directory", e))?;
    let path = dir.path().join("quickstart.mmblob");
    let store = DataStore::open(&path)?;

    let started = Instant::now();
    let keys: Vec<String> = (0..100_000).map(|i| format!("embedding/{i:06}")).collect();
    let vectors: Vec<Vec<f32>> = (0..100_000).map(|i| vec![i as f32; 16]).collect();
    for (keys, vectors) in keys.chunks(1_000).zip(vectors.chunks(1_000)) {
        let batch: Vec<(&[u8], &[u8])> = keys
            .iter()
            .zip(vectors)
            .map(|(k, v)| (k.as_bytes(), bytemuck::cast_slice::<f32, u8>(v)))
            .collect();
        store.batch_write(&batch)?;
    }
    println!(
        "wrote {} vectors of 16 f32 in {:?}",
        store.len(),
        started.elapsed()
    );

    let entry = store.read(b"embedding/004242")?.expect("written above");
    let floats: &[f32] = entry.as_typed()?;
    println!(
        "read embedding/004242 in place: first value {}, address {:p}",
        floats[0],
        floats.as_ptr()
    );

    let started = Instant::now();
    let sum: f64 = store
        .par_iter_entries()
        .map(|e| {
            e.as_typed::<f32>()
                .map_or(0.0, |v| v.iter().map(|&x| f64::from(x)).sum::<f64>())
        })
        .sum();
    println!(
        "summed every float in parallel: {sum} in {:?}",
        started.elapsed()
    );

    drop(store);
    let started = Instant::now();
    let store = DataStore::open_existing(&path)?;
    println!(
        "reopened {} entries in {:?}",
        store.len(),
        started.elapsed()
    );
    Ok(())
}
