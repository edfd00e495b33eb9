//! A process killed with SIGKILL at any moment of compaction leaves one
//! complete store: it opens, holds every acknowledged write, verifies clean,
//! and at most a stale `.NAME.compacting` file remains, which the next
//! writable open removes.
//!
//! The parent test re-runs this test binary as a child that applies a
//! deterministic sequence of operations (acknowledging each one in a log
//! after it returned) and compacts after every few, and kills it after a
//! seeded random delay, about thirty times.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mmblob::{DataStore, OpenOptions};

const CHILD_TEST: &str = "child_applies_operations_and_compacts_until_killed";
const ENV_STORE: &str = "MMBLOB_CRASH_TEST_STORE";
const ENV_LOG: &str = "MMBLOB_CRASH_TEST_LOG";
const ENV_START: &str = "MMBLOB_CRASH_TEST_START";
const ENV_SEED: &str = "MMBLOB_CRASH_TEST_SEED";
const DEFAULT_SEED: u64 = 0x5eed_c0de;
const ROUNDS: usize = 30;
const KEYS: u64 = 160;
/// Operations applied by the parent before the first child runs.
const PRELOAD: u64 = 500;
/// Operations between two compactions in the child.
const OPS_PER_COMPACTION: u64 = 6;

fn mix(seed: u64, x: u64) -> u64 {
    let mut z = seed ^ x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn key(k: u64) -> Vec<u8> {
    format!("key-{k:03}").into_bytes()
}

/// The value operation `op` writes under key `k`.
fn value(op: u64, k: u64) -> Vec<u8> {
    let len = (mix(op, k) % 40_000) as usize;
    let mut out = Vec::with_capacity(len);
    let mut x = mix(op ^ 0xabcd, k) | 1;
    while out.len() < len {
        out.extend_from_slice(&x.to_le_bytes());
        x = mix(x, op);
    }
    out.truncate(len);
    out
}

/// Operation `op`: what it does to which keys. Every operation sets keys to
/// values (or removes them), so applying it twice is the same as once.
enum Op {
    Write(u64),
    Batch([u64; 3]),
    Delete(u64),
}

fn op(op: u64) -> Op {
    let r = mix(0x0dd5, op);
    let k = r % KEYS;
    match (r >> 32) % 10 {
        0 | 1 => Op::Delete(k),
        2 => Op::Batch([k, (k + 1) % KEYS, (k + 17) % KEYS]),
        _ => Op::Write(k),
    }
}

fn apply(store: &DataStore, i: u64) {
    match op(i) {
        Op::Write(k) => {
            store.write(&key(k), &value(i, k)).expect("write");
        }
        Op::Batch(ks) => {
            let entries: Vec<(Vec<u8>, Vec<u8>)> =
                ks.iter().map(|&k| (key(k), value(i, k))).collect();
            let refs: Vec<(&[u8], &[u8])> = entries
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect();
            store.batch_write(&refs).expect("batch write");
        }
        Op::Delete(k) => {
            store.delete(&key(k)).expect("delete");
        }
    }
}

/// Which operation last set each key after operations `0..n` (None: deleted).
fn model(n: u64) -> BTreeMap<u64, Option<u64>> {
    let mut state = BTreeMap::new();
    for i in 0..n {
        match op(i) {
            Op::Write(k) => {
                state.insert(k, Some(i));
            }
            Op::Batch(ks) => {
                for k in ks {
                    state.insert(k, Some(i));
                }
            }
            Op::Delete(k) => {
                state.insert(k, None);
            }
        }
    }
    state
}

/// Whether `store` holds exactly the state after operations `0..n`.
fn holds_state(store: &DataStore, n: u64) -> Result<(), String> {
    let expected = model(n);
    let live = expected.values().filter(|v| v.is_some()).count();
    if store.len() != live {
        return Err(format!("{} live keys, expected {live}", store.len()));
    }
    for (&k, &last) in &expected {
        let got = store.read(&key(k)).expect("read");
        match (last, got) {
            (None, None) => {}
            (Some(i), Some(entry)) if *entry == *value(i, k) => {
                if !entry.verify_checksum() {
                    return Err(format!("key {k}: bad checksum"));
                }
            }
            (Some(i), Some(_)) => return Err(format!("key {k}: not the value of op {i}")),
            (Some(i), None) => return Err(format!("key {k}: missing, op {i} wrote it")),
            (None, Some(_)) => return Err(format!("key {k}: present, but deleted")),
        }
    }
    Ok(())
}

/// Operations acknowledged in the log: one complete line per operation.
fn acknowledged(log: &Path, start: u64) -> u64 {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .filter_map(|l| l.parse::<u64>().ok())
        .map(|i| i + 1)
        .max()
        .unwrap_or(start)
        .max(start)
}

fn temp_name(store: &Path) -> PathBuf {
    let name = store.file_name().expect("file name").to_string_lossy();
    store.with_file_name(format!(".{name}.compacting"))
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        // The index sidecar is a cache that every writable close may leave.
        .filter(|name| !name.ends_with(".index"))
        .collect();
    names.sort();
    names
}

/// Run by the parent test in a child process; does nothing on its own.
#[test]
#[ignore = "run in a child process by compaction_survives_sigkill_at_many_points"]
fn child_applies_operations_and_compacts_until_killed() {
    let (Some(store), Some(log), Some(start)) = (
        std::env::var_os(ENV_STORE),
        std::env::var_os(ENV_LOG),
        std::env::var(ENV_START).ok(),
    ) else {
        return;
    };
    let start: u64 = start.parse().expect("start operation");
    let store = DataStore::open(&store).expect("child open");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log");
    for i in start.. {
        apply(&store, i);
        // The operation returned: it is acknowledged.
        log.write_all(format!("{i}\n").as_bytes()).expect("log");
        if (i + 1) % OPS_PER_COMPACTION == 0 {
            store.compact().expect("compact");
        }
    }
}

#[test]
fn compaction_survives_sigkill_at_many_points() {
    let seed = std::env::var(ENV_SEED)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let dir = tempfile::tempdir().expect("store dir");
    let log_dir = tempfile::tempdir().expect("log dir");
    let path = dir.path().join("s.mmblob");
    let log = log_dir.path().join("acked.log");
    let store = DataStore::open(&path).expect("create");
    for i in 0..PRELOAD {
        apply(&store, i);
    }
    drop(store);

    let started = Instant::now();
    let mut next = PRELOAD;
    let mut killed_mid_compaction = 0;
    let mut compactions_seen = 0;
    for round in 0..ROUNDS as u64 {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", CHILD_TEST, "--nocapture", "--include-ignored"])
            .env(ENV_STORE, &path)
            .env(ENV_LOG, &log)
            .env(ENV_START, next.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn child");
        std::thread::sleep(Duration::from_millis(20 + mix(seed, round) % 180));
        if let Some(status) = child.try_wait().expect("child state") {
            let output = child.wait_with_output().expect("child output");
            panic!(
                "round {round}: the child stopped by itself ({status}): {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap child");

        // Nothing but the store and, at most, a stale compaction file (and
        // an index sidecar being written when the kill came).
        let temp = temp_name(&path);
        let sidecar_temp = dir.path().join("s.mmblob.index.tmp");
        let names: Vec<String> = dir_names(dir.path())
            .into_iter()
            .filter(|name| !name.ends_with(".index.tmp"))
            .collect();
        let temp_left = temp.exists();
        let expected: Vec<&str> = if temp_left {
            vec![".s.mmblob.compacting", "s.mmblob"]
        } else {
            vec!["s.mmblob"]
        };
        assert_eq!(names, expected, "round {round}: files after the kill");
        killed_mid_compaction += usize::from(temp_left);

        let acked = acknowledged(&log, next);
        compactions_seen += (acked / OPS_PER_COMPACTION).saturating_sub(next / OPS_PER_COMPACTION);
        // A read-only open changes nothing on disk.
        let reader = OpenOptions::new()
            .read_only(true)
            .open(&path)
            .expect("read-only open after kill");
        let in_reader = holds_state(&reader, acked).or_else(|e| {
            holds_state(&reader, acked + 1).map_err(|e2| format!("{e} / with one more: {e2}"))
        });
        drop(reader);
        assert_eq!(
            temp.exists(),
            temp_left,
            "read-only open leaves the temp file"
        );

        let store = DataStore::open(&path).expect("writable open after kill");
        assert!(
            !temp.exists() && !sidecar_temp.exists(),
            "round {round}: writable open removes the temp files"
        );
        let holds = holds_state(&store, acked).or_else(|e| {
            holds_state(&store, acked + 1).map_err(|e2| format!("{e} / with one more: {e2}"))
        });
        if let Err(e) = in_reader.and(holds) {
            panic!("round {round} (seed {seed}): acknowledged {acked} operations: {e}");
        }
        let report = store.verify().expect("verify");
        assert!(report.is_ok(), "round {round}: {report:?}");
        // An interrupted write is cut and reported as such; nothing else.
        assert!(
            store.damage().iter().all(|d| d.is_torn_tail()),
            "round {round}: damage recorded: {:?}",
            store.damage()
        );
        drop(store);
        next = acked;
    }
    eprintln!(
        "{ROUNDS} kills in {:?}: {killed_mid_compaction} before the rename of a compaction, \
         {compactions_seen} compactions completed, {} operations acknowledged",
        started.elapsed(),
        next - PRELOAD
    );
    assert!(next > PRELOAD, "the children acknowledged operations");
    assert!(compactions_seen > 0, "the children compacted");
    assert!(
        killed_mid_compaction > 0,
        "some kill landed inside a compaction (seed {seed})"
    );
}
