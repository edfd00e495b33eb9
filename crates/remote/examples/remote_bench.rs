//! Push and pull of a store against `object_store`'s own multipart put and
//! streamed get of the same bytes, to the same object store; and the cost
//! of an incremental push next to a plain upload of the same size.
//!
//! ```text
//! MMBLOB_BENCH_URL=s3://bucket/bench cargo run --release -p mmblob-remote \
//!     --example remote_bench -- [STORE_MIB=1024] [RUNS=3]
//! ```
//!
//! `tests/remote/run.sh` runs it against its Garage cluster when
//! `MMBLOB_REMOTE_BENCH` is set (to the arguments, e.g. "1024 3").

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mmblob_engine::DataStore;
use mmblob_remote::object_store::path::Path;
use mmblob_remote::object_store::{ObjectStore, PutPayload, WriteMultipart};
use mmblob_remote::{PullOptions, PushOptions, open_url, pull_async, push_async};

const PART: usize = 16 << 20;
const CONCURRENCY: usize = 4;

struct Pattern(u64);

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        for chunk in buf.chunks_mut(8) {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
        Ok(buf.len())
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

/// object_store's own multipart upload of bytes `0..len` of `file`.
async fn baseline_put(remote: &dyn ObjectStore, location: &Path, file: &File, len: u64) {
    let upload = remote.put_multipart(location).await.unwrap();
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
    let mut offset = 0;
    let mut buf = vec![0u8; PART];
    while offset < len {
        let n = (len - offset).min(PART as u64) as usize;
        file.read_exact_at(&mut buf[..n], offset).unwrap();
        writer.wait_for_capacity(CONCURRENCY).await.unwrap();
        writer.write(&buf[..n]);
        offset += n as u64;
    }
    writer.finish().await.unwrap();
}

/// object_store's own streamed get into a local file, synced.
async fn baseline_get(remote: &dyn ObjectStore, location: &Path, out: &std::path::Path) {
    let mut file = std::io::BufWriter::with_capacity(1 << 20, File::create(out).unwrap());
    let mut stream = remote.get(location).await.unwrap().into_stream();
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk.unwrap()).unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let store_mib: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let runs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let url = std::env::var("MMBLOB_BENCH_URL").expect("set MMBLOB_BENCH_URL=s3://bucket/prefix");
    let remote = open_url(&url).unwrap();
    let os = remote.store.as_ref();
    let dir =
        tempfile::tempdir_in(std::env::var_os("MMBLOB_BENCH_DIR").unwrap_or_else(|| ".".into()))
            .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // A store of STORE_MIB one-MiB values.
    let store = DataStore::open(dir.path().join("bench.mmblob")).unwrap();
    let mut value = vec![0u8; 1 << 20];
    let mut pattern = Pattern(1);
    for i in 0..store_mib {
        pattern.read_exact(&mut value).unwrap();
        store.write(format!("v{i}").as_bytes(), &value).unwrap();
    }
    let len = store.file_size().unwrap();
    let file = File::open(store.path()).unwrap();
    println!(
        "store: {} MiB in {} entries; {runs} runs; medians",
        len >> 20,
        store.len()
    );

    let (mut put, mut push, mut get, mut pulls) = (vec![], vec![], vec![], vec![]);
    let (mut inc_push, mut inc_put) = (vec![], vec![]);
    for run in 0..runs {
        // Each run adds 1 MiB (the incremental push below).
        let len = store.file_size().unwrap();
        let prefix = format!("{}/run{run}-{}", remote.prefix, std::process::id());
        let base = Path::from(format!("{prefix}/baseline.bin"));
        let t = Instant::now();
        rt.block_on(baseline_put(os, &base, &file, len));
        put.push(t.elapsed());

        let t = Instant::now();
        let stats = rt
            .block_on(push_async(
                &store,
                os,
                &format!("{prefix}/store"),
                &PushOptions::default(),
            ))
            .unwrap();
        push.push(t.elapsed());
        assert_eq!(stats.uploaded_bytes, len);

        let out = dir.path().join("baseline.out");
        let t = Instant::now();
        rt.block_on(baseline_get(os, &base, &out));
        get.push(t.elapsed());
        std::fs::remove_file(&out).unwrap();

        let replica = dir.path().join("replica.mmblob");
        let t = Instant::now();
        rt.block_on(pull_async(
            os,
            &format!("{prefix}/store"),
            &replica,
            &PullOptions::default(),
        ))
        .unwrap();
        pulls.push(t.elapsed());
        std::fs::remove_file(&replica).unwrap();

        // 1 MiB of new entries (16 x 64 KiB) into the big store.
        let mut small = vec![0u8; 64 << 10];
        for j in 0..16 {
            pattern.read_exact(&mut small).unwrap();
            store
                .write(format!("inc{run}-{j}").as_bytes(), &small)
                .unwrap();
        }
        let t = Instant::now();
        let stats = rt
            .block_on(push_async(
                &store,
                os,
                &format!("{prefix}/store"),
                &PushOptions::default(),
            ))
            .unwrap();
        inc_push.push(t.elapsed());
        let one_mib = vec![7u8; stats.uploaded_bytes as usize];
        let t = Instant::now();
        rt.block_on(os.put(
            &Path::from(format!("{prefix}/one-mib.bin")),
            PutPayload::from(one_mib),
        ))
        .unwrap();
        inc_put.push(t.elapsed());
        // Leave the cluster as it was.
        rt.block_on(async {
            let all: Vec<_> = os
                .list(Some(&Path::from(prefix.as_str())))
                .filter_map(|m| async move { m.ok().map(|m| m.location) })
                .collect()
                .await;
            for location in all {
                let _ = os.delete(&location).await;
            }
        });
    }
    let (put, push, get, pulls) = (median(put), median(push), median(get), median(pulls));
    let (inc_push, inc_put) = (median(inc_push), median(inc_put));
    println!("| operation | median | MiB/s | vs object_store |");
    println!("|---|---|---|---|");
    println!(
        "| object_store multipart put | {put:.2?} | {:.0} | 1.00x |",
        mib_s(len, put)
    );
    println!(
        "| mmblob push (full) | {push:.2?} | {:.0} | {:.2}x |",
        mib_s(len, push),
        put.as_secs_f64() / push.as_secs_f64()
    );
    println!(
        "| object_store get to a file, synced | {get:.2?} | {:.0} | 1.00x |",
        mib_s(len, get)
    );
    println!(
        "| mmblob pull (full, every entry checked, synced) | {pulls:.2?} | {:.0} | {:.2}x |",
        mib_s(len, pulls),
        get.as_secs_f64() / pulls.as_secs_f64()
    );
    println!("| object_store put of 1 MiB | {inc_put:.2?} | | 1.00x |");
    println!(
        "| mmblob push of 1 MiB new entries into the {} MiB store | {inc_push:.2?} | | {:.2}x |",
        len >> 20,
        inc_put.as_secs_f64() / inc_push.as_secs_f64()
    );
}
