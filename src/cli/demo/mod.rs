//! `mmblob demo`: the store at work on generated data, timed step by step.
//!
//! Writes many small entries in atomic batches, streams in one large value
//! from a generator that never holds it, reads it back as `&[u64]` in place,
//! reads random keys, iterates in parallel, verifies every checksum,
//! deletes and overwrites a fifth of the small entries, compacts, and
//! reopens. Every read is checked against what was written.

mod data;
mod report;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mmblob::DataStore;
use rayon::prelude::*;
use tempfile::TempDir;

use crate::cli::args::DemoArgs;
use crate::cli::error::{CliError, CliResult, Exit};
use crate::cli::interrupt::{self, Kind, Registered};
use crate::cli::output::{self, Out};
use crate::cli::{progress, store};
use data::{GeneratedValue, Rng};
use report::{DemoReport, Step};

/// Small entries per atomic batch.
const BATCH: u64 = 10_000;
/// Random reads at most.
const READS: u64 = 1_000_000;
/// Key of the large streamed value.
const LARGE_KEY: &[u8] = b"demo/large";
/// Seed of the large value's generator.
const LARGE_SEED: u64 = 0x6d6d_626c_6f62;

/// Bytes of store file per small entry, measured: payload (16 to 128
/// bytes, on a 64-byte boundary), key and trailer, 10,000 to a batch.
const FILE_BYTES_PER_ENTRY: u64 = 192;
/// Bytes of index sidecar per entry, with room to spare.
const SIDECAR_BYTES_PER_ENTRY: u64 = 48;
/// Free space kept in hand beyond the estimate.
const SPARE_BYTES: u64 = 64 << 20;

/// Runs `demo`. Ctrl-C removes the temporary store (the handler in
/// [`interrupt`] exits with status 130).
pub fn run(store_path: Option<&Path>, args: &DemoArgs, json: bool) -> CliResult {
    let started = Instant::now();
    let (path, temp) = demo_path(store_path, needed_bytes(args))?;
    eprintln!(
        "mmblob demo: {} small entries and a {} value in {}",
        output::count(args.entries),
        output::bytes(args.size_mb << 20),
        path.display()
    );
    let mut demo = Demo {
        db: store::open_writable(&path, true)?,
        path,
        entries: args.entries,
        steps: Vec::new(),
    };
    let sizes = demo.run_steps(args.size_mb << 20)?;
    let report = demo.into_report(sizes, temp.is_none(), started);
    drop(temp);
    let mut out = Out::new();
    if json {
        out.json(&report)?;
    } else {
        report.print_human(&mut out)?;
    }
    out.flush()
}

/// Free space the demo needs at its peak, during compaction: the store
/// with its churn, the compacted copy beside it, and the index sidecar.
fn needed_bytes(args: &DemoArgs) -> u64 {
    let small = args.entries.saturating_mul(FILE_BYTES_PER_ENTRY);
    let large = args.size_mb << 20;
    // Churn overwrites a tenth of the small entries and deletes another.
    let before = small + small / 5 + large;
    let after = small + large;
    let sidecar = args.entries.saturating_mul(SIDECAR_BYTES_PER_ENTRY);
    before + after + sidecar + SPARE_BYTES
}

/// Fails with a message saying how much the demo needs when the file
/// system holding `dir` has less free space than `needed`.
fn check_free_space(dir: &Path, needed: u64) -> CliResult {
    let Ok(stats) = rustix::fs::statvfs(dir) else {
        return Ok(()); // cannot tell: go ahead, a full disk is reported anyway
    };
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    if free >= needed {
        return Ok(());
    }
    Err(CliError::new(
        Exit::Failure,
        format!(
            "the demo needs about {} of free space in {} and there is {}; nothing was \
             written. Make it smaller (--entries, --size-mb), or run it elsewhere with \
             --store PATH or TMPDIR=DIR",
            output::bytes(needed),
            dir.display(),
            output::bytes(free)
        ),
    ))
}

/// The store path: `--store` if it is new or empty, else a fresh temporary
/// directory (returned with its Ctrl-C registration, so both live until the
/// demo ends). Checks first that there is room for `needed` bytes.
fn demo_path(
    store_path: Option<&Path>,
    needed: u64,
) -> CliResult<(PathBuf, Option<(TempDir, Registered)>)> {
    if let Some(path) = store_path {
        if fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return Err(CliError::new(
                Exit::Usage,
                format!(
                    "{} already exists; the demo writes into a new store, so give it a new \
                     path with --store (or none, for a temporary directory)",
                    path.display()
                ),
            ));
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        check_free_space(dir, needed)?;
        return Ok((path.to_path_buf(), None));
    }
    check_free_space(&std::env::temp_dir(), needed)?;
    let temp = tempfile::Builder::new()
        .prefix("mmblob-demo-")
        .tempdir()
        .map_err(|e| {
            CliError::io(
                "cannot create a temporary directory in",
                &std::env::temp_dir(),
                &e,
            )
        })?;
    // The temporary directory holds a GiB or more: Ctrl-C removes it.
    let registered = interrupt::remove_on_interrupt(temp.path(), Kind::Dir);
    Ok((temp.path().join("demo.mmblob"), Some((temp, registered))))
}

/// The demo's store and what it has measured so far.
struct Demo {
    db: DataStore,
    path: PathBuf,
    entries: u64,
    steps: Vec<Step>,
}

impl Demo {
    /// Runs every step; returns the file size before and after compaction.
    fn run_steps(&mut self, large_len: u64) -> CliResult<(u64, u64)> {
        self.write_small()?;
        self.stream_large(large_len)?;
        self.random_reads()?;
        self.parallel_iter()?;
        self.verify()?;
        self.churn()?;
        let sizes = self.compact()?;
        self.reopen()?;
        Ok(sizes)
    }

    /// The report of a finished demo; closes the store.
    fn into_report(self, (before, after): (u64, u64), kept: bool, started: Instant) -> DemoReport {
        DemoReport {
            store: self.path.display().to_string(),
            kept,
            live_entries: self.db.len() as u64,
            index_memory_bytes: self.db.index_memory_bytes() as u64,
            steps: self.steps,
            file_size_before_compact: before,
            file_size_after_compact: after,
            total_seconds: started.elapsed().as_secs_f64(),
        }
    }

    fn store_err(&self, err: mmblob::Error) -> CliError {
        CliError::store(&self.path, err)
    }

    /// Writes the small entries in atomic batches of [`BATCH`].
    fn write_small(&mut self) -> CliResult {
        let started = Instant::now();
        let bar = progress::count(self.entries, "write");
        let mut bytes = 0;
        for first in (0..self.entries).step_by(BATCH as usize) {
            let last = (first + BATCH).min(self.entries);
            bytes += self.write_generation(first..last, 0, |_| true)?;
            bar.inc(last - first);
        }
        bar.finish_and_clear();
        self.steps.push(Step::new(
            "batch write",
            self.entries,
            bytes,
            started.elapsed(),
        ));
        Ok(())
    }

    /// Writes generation `generation` of the small entries in `range` that
    /// `pick` selects, in one batch; returns the payload bytes written.
    fn write_generation(
        &self,
        range: std::ops::Range<u64>,
        generation: u64,
        pick: impl Fn(u64) -> bool,
    ) -> CliResult<u64> {
        let picked: Vec<u64> = range.filter(|&i| pick(i)).collect();
        let keys: Vec<[u8; data::KEY_LEN]> = picked.iter().map(|&i| data::small_key(i)).collect();
        let mut values = Vec::new();
        let mut ends = Vec::with_capacity(picked.len());
        for &i in &picked {
            data::push_small_value(&mut values, i, generation);
            ends.push(values.len());
        }
        let starts = std::iter::once(0).chain(ends.iter().copied());
        let batch: Vec<(&[u8], &[u8])> = keys
            .iter()
            .zip(starts.zip(&ends))
            .map(|(key, (start, &end))| (key.as_slice(), &values[start..end]))
            .collect();
        self.db.batch_write(&batch).map_err(|e| self.store_err(e))?;
        Ok(values.len() as u64)
    }

    /// Streams in the large value, then reads it back in place as `&[u64]`.
    fn stream_large(&mut self, len: u64) -> CliResult {
        let started = Instant::now();
        let bar = progress::bytes(len, "stream");
        let mut source = GeneratedValue::new(len, LARGE_SEED);
        let written = self
            .db
            .write_stream(LARGE_KEY, &mut bar.wrap_read(&mut source));
        bar.finish_and_clear();
        written.map_err(|e| self.store_err(e))?;
        self.steps
            .push(Step::new("stream in", 0, len, started.elapsed()));
        self.scan_large(len, source.sum())
    }

    /// Sums the large value as `u64` words straight from the map, in parallel.
    fn scan_large(&mut self, len: u64, expected: u64) -> CliResult {
        let started = Instant::now();
        let entry = self.read_existing(LARGE_KEY)?;
        let words: &[u64] = entry.as_typed().map_err(|e| self.store_err(e))?;
        let bar = progress::bytes(len, "scan");
        let sum = words
            .par_chunks(1 << 17)
            .map(|chunk| {
                bar.inc(chunk.len() as u64 * 8);
                chunk.iter().fold(0u64, |a, &w| a.wrapping_add(w))
            })
            .reduce(|| 0, u64::wrapping_add);
        bar.finish_and_clear();
        check(
            sum == expected,
            "the large value does not read back as written",
        )?;
        self.steps
            .push(Step::new("read as &[u64]", 0, len, started.elapsed()));
        Ok(())
    }

    fn read_existing(&self, key: &[u8]) -> CliResult<mmblob::EntryHandle> {
        self.db
            .read(key)
            .map_err(|e| self.store_err(e))?
            .ok_or_else(|| CliError::key_not_found(&self.path, key))
    }

    /// Reads random small keys and checks each value's tag.
    fn random_reads(&mut self) -> CliResult {
        let reads = self.entries.min(READS);
        let started = Instant::now();
        let bar = progress::count(reads, "read");
        let mut rng = Rng::new(READS);
        for done in 0..reads {
            let i = rng.below(self.entries);
            let entry = self.read_existing(&data::small_key(i))?;
            check(
                data::read_tag(&entry) == Some(data::tag(i, 0)),
                "a small value does not read back as written",
            )?;
            if done % BATCH == 0 {
                bar.set_position(done);
            }
        }
        bar.finish_and_clear();
        self.steps
            .push(Step::new("random reads", reads, 0, started.elapsed()));
        Ok(())
    }

    /// Visits every live entry once with rayon, checking each small value's tag.
    fn parallel_iter(&mut self) -> CliResult {
        let started = Instant::now();
        let (items, wrong) = self
            .db
            .par_iter_entries()
            .map(|e| match data::small_index(e.key()) {
                Some(i) => (1u64, u64::from(data::read_tag(&e) != Some(data::tag(i, 0)))),
                None => (1, 0),
            })
            .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        check(
            items == self.entries + 1,
            "parallel iteration missed entries",
        )?;
        check(wrong == 0, "parallel iteration saw a value not as written")?;
        self.steps
            .push(Step::new("parallel iter", items, 0, started.elapsed()));
        Ok(())
    }

    /// Recomputes every checksum.
    fn verify(&mut self) -> CliResult {
        let started = Instant::now();
        let bar = progress::bytes(self.db.stats().file_size, "verify");
        let report = self.db.verify_with_progress(|n| bar.inc(n));
        bar.finish_and_clear();
        let report = report.map_err(|e| self.store_err(e))?;
        check(report.is_ok(), "verify found damage in a fresh store")?;
        self.steps.push(Step::new(
            "verify",
            report.entries_checked,
            report.bytes_checked,
            started.elapsed(),
        ));
        Ok(())
    }

    /// Deletes every tenth small entry and overwrites the next tenth.
    fn churn(&mut self) -> CliResult {
        let started = Instant::now();
        let mut changed = 0;
        for first in (0..self.entries).step_by(BATCH as usize) {
            let range = first..(first + BATCH).min(self.entries);
            let keys: Vec<[u8; data::KEY_LEN]> = range
                .clone()
                .filter(|i| i % 10 == 0)
                .map(data::small_key)
                .collect();
            let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
            changed += self.db.batch_delete(&refs).map_err(|e| self.store_err(e))? as u64;
            self.write_generation(range.clone(), 1, |i| i % 10 == 1)?;
            changed += range.filter(|i| i % 10 == 1).count() as u64;
        }
        self.steps
            .push(Step::new("delete+overwrite", changed, 0, started.elapsed()));
        Ok(())
    }

    /// Compacts; returns the file size before and after.
    fn compact(&mut self) -> CliResult<(u64, u64)> {
        let started = Instant::now();
        let live = self.db.stats().live_bytes;
        let bar = progress::bytes(live, "compact");
        let stats = self.db.compact_with_progress(|n| bar.inc(n));
        bar.finish_and_clear();
        let stats = stats.map_err(|e| self.store_err(e))?;
        self.steps.push(Step::new(
            "compact",
            stats.entries_kept,
            live,
            started.elapsed(),
        ));
        Ok((stats.bytes_before, stats.bytes_after))
    }

    /// Opens the store again, read-only (loading the index sidecar that
    /// compaction left), switches to that handle and spot-checks it.
    fn reopen(&mut self) -> CliResult {
        let started = Instant::now();
        let db = store::open_read_only(&self.path)?;
        let elapsed = started.elapsed();
        self.db = db;
        let expected = self.entries - self.entries.div_ceil(10) + 1;
        check(
            self.db.len() as u64 == expected,
            "the reopened store has the wrong number of keys",
        )?;
        self.spot_check()?;
        self.steps.push(Step::new("reopen", expected, 0, elapsed));
        Ok(())
    }

    /// Reads a sample of keys and checks deletes and overwrites survived.
    fn spot_check(&self) -> CliResult {
        let mut rng = Rng::new(self.entries);
        for _ in 0..self.entries.min(10_000) {
            let i = rng.below(self.entries);
            let value = self
                .db
                .read(&data::small_key(i))
                .map_err(|e| self.store_err(e))?;
            let tag = value.as_deref().and_then(data::read_tag);
            let expected = match i % 10 {
                0 => None,
                1 => Some(data::tag(i, 1)),
                _ => Some(data::tag(i, 0)),
            };
            check(
                tag == expected,
                "a value read after reopening is not the last one written",
            )?;
        }
        Ok(())
    }
}

/// Fails the demo with `what` unless `ok`.
fn check(ok: bool, what: &str) -> CliResult {
    if ok {
        return Ok(());
    }
    Err(CliError::new(
        Exit::Failure,
        format!("demo check failed: {what}; please report this as a bug"),
    ))
}
