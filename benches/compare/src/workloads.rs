//! The workloads, each run inside a child process for one engine.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::data::{self, GenReader, Pool};
use crate::engines::{self, Engine, Kind, Mode, Scan};
use crate::mem;

/// Every workload, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Put1,
    PutBatch,
    PutLarge,
    Get,
    Get2t,
    GetBatch,
    Get10k,
    Scan,
    ParScan,
    Stream,
    Reopen,
    Put1Sync,
    Put1Sync8t,
    Memory,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 14] = [
        Workload::Put1,
        Workload::PutBatch,
        Workload::PutLarge,
        Workload::Get,
        Workload::Get2t,
        Workload::GetBatch,
        Workload::Get10k,
        Workload::Scan,
        Workload::ParScan,
        Workload::Stream,
        Workload::Reopen,
        Workload::Put1Sync,
        Workload::Put1Sync8t,
        Workload::Memory,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Put1 => "put1",
            Workload::PutBatch => "putbatch",
            Workload::PutLarge => "putlarge",
            Workload::Get => "get",
            Workload::Get2t => "get2t",
            Workload::GetBatch => "getbatch",
            Workload::Get10k => "get10k",
            Workload::Scan => "scan",
            Workload::ParScan => "parscan",
            Workload::Stream => "stream",
            Workload::Reopen => "reopen",
            Workload::Put1Sync => "put1sync",
            Workload::Put1Sync8t => "put1sync8t",
            Workload::Memory => "memory",
        }
    }

    /// Parses a name given by [`Workload::name`].
    pub fn parse(name: &str) -> Result<Workload> {
        match Workload::ALL.into_iter().find(|w| w.name() == name) {
            Some(w) => Ok(w),
            None => bail!("unknown workload {name:?}"),
        }
    }

    /// The prebuilt store this workload reads, if it reads one.
    pub fn fixture(self) -> Option<Fixture> {
        match self {
            Workload::Get
            | Workload::Get2t
            | Workload::GetBatch
            | Workload::Scan
            | Workload::ParScan
            | Workload::Reopen => Some(Fixture::Store),
            Workload::Memory => Some(Fixture::Keys),
            Workload::Get10k => Some(Fixture::WholeValues),
            _ => None,
        }
    }

    /// Whether `kind` runs this workload: SQLite and one file per value
    /// run only the whole-value workload, which runs only them and mmblob.
    pub fn applies(self, kind: Kind) -> bool {
        match self {
            Workload::Get10k => {
                kind.whole_values_only() || matches!(kind, Kind::Mmblob | Kind::MmblobHandles)
            }
            _ => !kind.whole_values_only(),
        }
    }

    /// Whether the timed part writes (so the engine's durability setting matters).
    fn writes(self) -> bool {
        self.fixture().is_none()
    }
}

/// A store built once per engine and run by a separate child, then copied
/// into the fresh directory of every measurement that reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fixture {
    /// `Sizes::store` entries of 16-byte keys and 64-byte values.
    Store,
    /// `Sizes::memory` entries of 16-byte keys and 8-byte values.
    Keys,
    /// `Sizes::whole` incompressible values of 8,000..=12,000 bytes.
    WholeValues,
}

/// Problem sizes.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sizes {
    pub put1: usize,
    pub putbatch: usize,
    pub batch: usize,
    pub large: usize,
    pub large_batch: usize,
    pub large_len: usize,
    pub store: usize,
    pub stream: u64,
    pub sync: usize,
    pub sync_threads: usize,
    pub memory: usize,
    pub whole: usize,
}

impl Sizes {
    /// The sizes of the full run, or the smaller ones of `--quick`.
    pub fn new(quick: bool) -> Sizes {
        let full = Sizes {
            put1: 100_000,
            putbatch: 1_000_000,
            batch: 1_000,
            large: 1_000,
            large_batch: 10,
            large_len: 1 << 20,
            store: 1_000_000,
            stream: 1 << 30,
            sync: 2_000,
            sync_threads: 8,
            memory: 10_000_000,
            whole: 100_000,
        };
        if !quick {
            return full;
        }
        Sizes {
            put1: 10_000,
            putbatch: 100_000,
            large: 100,
            store: 100_000,
            stream: 64 << 20,
            sync: 200,
            memory: 1_000_000,
            whole: 10_000,
            ..full
        }
    }
}

/// Which way is better for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Higher,
    Lower,
    /// Informational: no ratio is computed.
    Info,
}

/// One number a child measured. `value` is `None` where the engine cannot run the workload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    pub value: Option<f64>,
    pub better: Better,
    /// Another view of a number already reported (left out of the chart).
    #[serde(default)]
    pub secondary: bool,
}

impl Metric {
    fn new(name: &str, value: Option<f64>, better: Better) -> Metric {
        Metric {
            name: name.to_string(),
            value,
            better,
            secondary: false,
        }
    }

    fn secondary(mut self) -> Metric {
        self.secondary = true;
        self
    }
}

/// The line a child prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Measurement {
    pub engine: String,
    pub workload: String,
    pub metrics: Vec<Metric>,
    pub note: Option<String>,
}

/// Builds `fixture` for `kind` in `dir` and closes it.
pub fn build_fixture(
    kind: Kind,
    fixture: Fixture,
    sizes: &Sizes,
    dir: &Path,
) -> Result<Measurement> {
    // The memory fixture is inserted in key order and in larger batches:
    // building 10 M random keys into the B-tree peers would take minutes,
    // and what it measures (memory held after open) does not depend on the
    // order. The read workloads' store keeps the random insertion order.
    let t = Instant::now();
    let engine = engines::open(kind, dir, Mode::Flush)?;
    match fixture {
        Fixture::Store => populate(&*engine, sizes.store, 64, sizes.batch, false)?,
        Fixture::Keys => populate(&*engine, sizes.memory, 8, 10 * sizes.batch, true)?,
        Fixture::WholeValues => populate_whole(&*engine, sizes.whole)?,
    }
    drop(engine);
    let metrics = vec![Metric::new("build s", Some(secs_since(t)), Better::Info)];
    Ok(Measurement {
        engine: kind.name().into(),
        workload: format!("{fixture:?}"),
        metrics,
        note: None,
    })
}

/// Runs `workload` for `kind` in `dir` (which holds a copy of the fixture
/// if the workload has one); returns what to report.
pub fn run(kind: Kind, workload: Workload, sizes: &Sizes, dir: &Path) -> Result<Measurement> {
    let mode = match workload {
        Workload::Put1Sync | Workload::Put1Sync8t => Mode::Sync,
        _ => Mode::Flush,
    };
    let note = if workload.writes() {
        engines::note(kind, mode).map(str::to_string)
    } else {
        None
    };
    let metrics = run_timed(kind, workload, sizes, dir, mode)?;
    Ok(Measurement {
        engine: kind.name().into(),
        workload: workload.name().into(),
        metrics,
        note,
    })
}

fn run_timed(
    kind: Kind,
    workload: Workload,
    s: &Sizes,
    dir: &Path,
    mode: Mode,
) -> Result<Vec<Metric>> {
    match workload {
        Workload::Put1 => put_single(kind, dir, mode, s.put1, 1),
        Workload::PutBatch => put_batched(kind, dir, s.putbatch, 64, s.batch, false),
        Workload::PutLarge => put_batched(kind, dir, s.large, s.large_len, s.large_batch, true),
        Workload::Get => get(kind, dir, s, 1),
        Workload::Get2t => get(kind, dir, s, 2),
        Workload::GetBatch => get_batched(kind, dir, s),
        Workload::Get10k => get_whole(kind, dir, s.whole),
        Workload::Scan => scan(kind, dir, s, false),
        Workload::ParScan => scan(kind, dir, s, true),
        Workload::Stream => stream(kind, dir, s.stream),
        Workload::Reopen => reopen(kind, dir, s.store),
        Workload::Put1Sync => put_single(kind, dir, mode, s.sync, 1),
        Workload::Put1Sync8t => put_single(kind, dir, mode, s.sync, s.sync_threads),
        Workload::Memory => memory(kind, dir, s.memory),
    }
}

fn secs_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64().max(1e-9)
}

/// CPU time this process has used (every thread), in seconds. On a
/// machine shared with other work, time slices taken by other processes
/// stretch wall-clock time but not this.
pub fn cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// `count` operations per CPU-second since `cpu_start` (see [`cpu_secs`]).
fn per_cpu_sec(name: &str, count: f64, cpu_start: f64) -> Metric {
    let used = (cpu_secs() - cpu_start).max(1e-9);
    Metric::new(name, Some(count / used), Better::Higher).secondary()
}

/// `n` single writes of 64 bytes, spread over `threads` threads sharing one store.
fn put_single(kind: Kind, dir: &Path, mode: Mode, n: usize, threads: usize) -> Result<Vec<Metric>> {
    let keys = data::keys(n);
    let pool = Pool::new(64);
    let engine = engines::open(kind, dir, mode)?;
    let per = n.div_ceil(threads);
    let t = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = keys
            .chunks(per)
            .enumerate()
            .map(|(c, chunk)| {
                let (engine, pool) = (&*engine, &pool);
                scope.spawn(move || put_each(engine, pool, c * per, chunk))
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| anyhow::anyhow!("writer panicked"))?)
    })?;
    let secs = secs_since(t);
    Ok(vec![Metric::new(
        "writes/s",
        Some(n as f64 / secs),
        Better::Higher,
    )])
}

fn put_each(engine: &dyn Engine, pool: &Pool, first: usize, keys: &[[u8; 16]]) -> Result<()> {
    for (i, key) in keys.iter().enumerate() {
        engine.put(key, pool.value(first + i, 64))?;
    }
    Ok(())
}

/// `n` values of `len` bytes written in batches of `batch`; reported in
/// entries/s, or first in GB/s if `bytes_first`.
fn put_batched(
    kind: Kind,
    dir: &Path,
    n: usize,
    len: usize,
    batch: usize,
    bytes_first: bool,
) -> Result<Vec<Metric>> {
    let keys = data::keys(n);
    let pool = Pool::new(len);
    let entries: Vec<(&[u8], &[u8])> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (&k[..], pool.value(i, len)))
        .collect();
    let engine = engines::open(kind, dir, Mode::Flush)?;
    let t = Instant::now();
    for chunk in entries.chunks(batch) {
        engine.put_batch(chunk)?;
    }
    let secs = secs_since(t);
    let entries = Metric::new("entries/s", Some(n as f64 / secs), Better::Higher);
    let gbs = Metric::new("GB/s", Some((n * len) as f64 / secs / 1e9), Better::Higher);
    Ok(if bytes_first {
        vec![gbs, entries.secondary()]
    } else {
        vec![entries, gbs.secondary()]
    })
}

/// Writes entries `0..n` with values of `len` bytes in batches (not timed),
/// in insertion-index order, or in key order if `sorted`.
fn populate(engine: &dyn Engine, n: usize, len: usize, batch: usize, sorted: bool) -> Result<()> {
    let pool = Pool::new(len);
    let mut keys: Vec<(usize, [u8; 16])> = (0..n).map(|i| (i, data::key(i))).collect();
    if sorted {
        keys.sort_unstable_by_key(|e| e.1);
    }
    for chunk in keys.chunks(batch) {
        let entries: Vec<(&[u8], &[u8])> = chunk
            .iter()
            .map(|(i, k)| (&k[..], pool.value(*i, len)))
            .collect();
        engine.put_batch(&entries)?;
    }
    engine.finish()
}

/// Length of whole value `i`: 8,000..=12,000 bytes.
fn whole_len(i: usize) -> usize {
    let mut state = data::SEED ^ (i as u64) ^ 0x10_000;
    8_000 + (data::splitmix(&mut state) % 4_001) as usize
}

/// Writes `n` values of 8,000..=12,000 incompressible bytes in random key
/// order, in transactions of 100 (about 1 MB).
fn populate_whole(engine: &dyn Engine, n: usize) -> Result<()> {
    let pool = Pool::new(12_000);
    let order = data::permutation(n, data::SEED ^ 0x10_000);
    let keys = data::keys(n);
    for chunk in order.chunks(100) {
        let entries: Vec<(&[u8], &[u8])> = chunk
            .iter()
            .map(|&i| {
                (
                    &keys[i as usize][..],
                    pool.value(i as usize, whole_len(i as usize)),
                )
            })
            .collect();
        engine.put_batch(&entries)?;
    }
    engine.finish()
}

/// Every one of `n` ~10 KB values read whole once, in random order, every
/// byte consumed (the workload of SQLite's "35% faster than the
/// filesystem" study). The files are in the page cache (warm).
fn get_whole(kind: Kind, dir: &Path, n: usize) -> Result<Vec<Metric>> {
    let engine = engines::open(kind, dir, Mode::Flush)?;
    let keys = data::keys(n);
    let order = data::permutation(n, data::SEED);
    let expected: u64 = order.iter().map(|&i| whole_len(i as usize) as u64).sum();
    let cpu = cpu_secs();
    let t = Instant::now();
    let mut reader = engine.reader()?;
    let mut acc = 0u64;
    for &i in &order {
        acc = acc.wrapping_add(reader.get(i as usize, &keys[i as usize])?);
    }
    black_box(acc);
    let secs = secs_since(t);
    Ok(vec![
        Metric::new("values/s", Some(n as f64 / secs), Better::Higher),
        Metric::new("GB/s", Some(expected as f64 / secs / 1e9), Better::Higher).secondary(),
        per_cpu_sec("values/CPU-s", n as f64, cpu),
    ])
}

fn read_pass(engine: &dyn Engine, keys: &[[u8; 16]], order: &[u32]) -> Result<u64> {
    let mut reader = engine.reader()?;
    let mut acc = 0u64;
    for &i in order {
        acc = acc.wrapping_add(reader.get(i as usize, &keys[i as usize])?);
    }
    Ok(black_box(acc))
}

/// Every key read once in random order, on each of `threads` threads.
fn get(kind: Kind, dir: &Path, s: &Sizes, threads: usize) -> Result<Vec<Metric>> {
    let engine = engines::open(kind, dir, Mode::Flush)?;
    let keys = data::keys(s.store);
    let orders: Vec<Vec<u32>> = (0..threads)
        .map(|t| data::permutation(s.store, data::SEED + t as u64))
        .collect();
    let cpu = cpu_secs();
    let t = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = orders
            .iter()
            .map(|order| {
                let (engine, keys) = (&*engine, &keys);
                scope.spawn(move || read_pass(engine, keys, order))
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join().map_err(|_| anyhow::anyhow!("reader panicked"))??;
            Ok::<(), anyhow::Error>(())
        })
    })?;
    let secs = secs_since(t);
    let reads = (s.store * threads) as f64;
    Ok(vec![
        Metric::new("reads/s", Some(reads / secs), Better::Higher),
        per_cpu_sec("reads/CPU-s", reads, cpu),
    ])
}

/// Every key read once in random order, `Sizes::batch` keys per call.
fn get_batched(kind: Kind, dir: &Path, s: &Sizes) -> Result<Vec<Metric>> {
    let engine = engines::open(kind, dir, Mode::Flush)?;
    let keys = data::keys(s.store);
    let order = data::permutation(s.store, data::SEED);
    let t = Instant::now();
    let mut reader = engine.reader()?;
    let mut acc = 0u64;
    for chunk in order.chunks(s.batch) {
        let indexes: Vec<usize> = chunk.iter().map(|&i| i as usize).collect();
        let batch: Vec<&[u8]> = indexes.iter().map(|&i| &keys[i][..]).collect();
        acc = acc.wrapping_add(reader.get_many(&indexes, &batch)?);
    }
    black_box(acc);
    let secs = secs_since(t);
    Ok(vec![Metric::new(
        "reads/s",
        Some(s.store as f64 / secs),
        Better::Higher,
    )])
}

/// Every live value once, sequentially or in parallel.
fn scan(kind: Kind, dir: &Path, s: &Sizes, parallel: bool) -> Result<Vec<Metric>> {
    let engine = engines::open(kind, dir, Mode::Flush)?;
    rayon::join(|| (), || ());
    let cpu = cpu_secs();
    let t = Instant::now();
    let result: Option<Scan> = if parallel {
        engine.par_scan()?
    } else {
        Some(engine.scan()?)
    };
    let secs = secs_since(t);
    let Some(seen) = result else {
        return Ok(scan_metrics(None, secs));
    };
    black_box(seen.fold);
    ensure!(
        seen.entries == s.store as u64,
        "scan saw {} entries, expected {}",
        seen.entries,
        s.store
    );
    let mut metrics = scan_metrics(Some(seen), secs);
    metrics.push(per_cpu_sec("entries/CPU-s", seen.entries as f64, cpu));
    Ok(metrics)
}

fn scan_metrics(seen: Option<Scan>, secs: f64) -> Vec<Metric> {
    let gbs = seen.map(|s| s.bytes as f64 / secs / 1e9);
    let eps = seen.map(|s| s.entries as f64 / secs);
    let mb = seen.map(|s| s.bytes as f64 / 1e6);
    vec![
        Metric::new("GB/s", gbs, Better::Higher),
        Metric::new("entries/s", eps, Better::Higher).secondary(),
        Metric::new("MB scanned", mb, Better::Info),
    ]
}

/// One value of `len` bytes written from a generated reader and read back in 1 MiB reads.
fn stream(kind: Kind, dir: &Path, len: u64) -> Result<Vec<Metric>> {
    let key = data::key(0);
    let engine = engines::open(kind, dir, Mode::Flush)?;
    let mut buf = vec![0u8; 1 << 20];
    let sampler = mem::PeakSampler::start()?;
    let mut src = GenReader::new(len);
    let t = Instant::now();
    let wrote = engine.put_stream(&key, len, &mut src)?;
    let write_secs = secs_since(t);
    let t = Instant::now();
    let read = if wrote.is_some() {
        engine.get_stream(&key, &mut buf)?
    } else {
        None
    };
    let read_secs = secs_since(t);
    let peak = sampler.finish()?;
    if let Some(r) = read {
        ensure!(
            r.bytes == len,
            "streamed back {} bytes, expected {len}",
            r.bytes
        );
        black_box(r.fold);
    }
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let ok = read.is_some();
    Ok(vec![
        Metric::new(
            "write GB/s",
            ok.then(|| len as f64 / write_secs / 1e9),
            Better::Higher,
        ),
        Metric::new(
            "read GB/s",
            ok.then(|| len as f64 / read_secs / 1e9),
            Better::Higher,
        ),
        Metric::new("peak RssAnon MiB", ok.then(|| mib(peak)), Better::Lower),
        Metric::new(
            "VmHWM MiB",
            ok.then(|| mem::vm_hwm().map(mib)).transpose()?,
            Better::Info,
        ),
    ])
}

/// Open a prebuilt store of `n` entries and read one value.
fn reopen(kind: Kind, dir: &Path, n: usize) -> Result<Vec<Metric>> {
    let key = data::key(n / 2);
    let t = Instant::now();
    let engine = engines::open(kind, dir, Mode::Flush)?;
    black_box(engine.reader()?.get(n / 2, &key)?);
    let ms = secs_since(t) * 1e3;
    Ok(vec![Metric::new("open+read ms", Some(ms), Better::Lower)])
}

/// Anonymous memory held per live key once a prebuilt store of `n` entries is open.
fn memory(kind: Kind, dir: &Path, n: usize) -> Result<Vec<Metric>> {
    let key = data::key(n / 2);
    let (anon_before, file_before) = (mem::rss_anon()?, mem::rss_file()?);
    let t = Instant::now();
    let engine = engines::open(kind, dir, Mode::Flush)?;
    black_box(engine.reader()?.get(n / 2, &key)?);
    let ms = secs_since(t) * 1e3;
    let (anon_after, file_after) = (mem::rss_anon()?, mem::rss_file()?);
    let per_key = |after: u64, before: u64| after.saturating_sub(before) as f64 / n as f64;
    Ok(vec![
        Metric::new(
            "RssAnon B/key",
            Some(per_key(anon_after, anon_before)),
            Better::Lower,
        ),
        // Page-cache pages the engine mapped and touched to open (an index
        // mapped from a file shows here, not in RssAnon).
        Metric::new(
            "RssFile B/key",
            Some(per_key(file_after, file_before)),
            Better::Lower,
        )
        .secondary(),
        Metric::new("open+read ms", Some(ms), Better::Info),
    ])
}
