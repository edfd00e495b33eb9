//! `Durability::None`, `Flush` and `Sync`.
//!
//! Every mode keeps everything across a drop and reopen, and `sync()` works
//! in every mode. `Sync` with eight threads (group commit) keeps every
//! acknowledged write even when the process is SIGKILLed mid-way. Under
//! `strace` the child's system calls show the order that makes the promises
//! true: with `Sync` every acknowledgement comes after an `fdatasync` of the
//! store that started after the write call began (the child announces each
//! call; writes copied into the writable map make no system call of their
//! own); with `Flush` no sync at all; and eight `Sync` writers share syncs.
//! Without strace these checks print `skipped: strace not installed`, and
//! with `MMBLOB_REQUIRE_STRACE=1` (as `./test` runs them) they fail instead.

mod support;

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use mmblob::{DataStore, Durability, OpenOptions};
use support::rng::value_for;
use support::{child, strace};

const MODES: [Durability; 3] = [Durability::None, Durability::Flush, Durability::Sync];

fn mode_from(seed: u64) -> Durability {
    MODES[seed as usize % MODES.len()]
}

/// Writes, batches, streams, deletes and overwrites `n` keys with `mode`,
/// calling `begin` before each write call and `ack` after it.
fn write_everything(
    store: &DataStore,
    prefix: &str,
    n: usize,
    begin: impl Fn(&str),
    ack: impl Fn(&str),
) {
    for i in 0..n {
        let key = format!("{prefix}{i}");
        begin(&key);
        match i % 4 {
            0 | 1 => {
                store
                    .write(key.as_bytes(), &value_for(key.as_bytes()))
                    .expect("write");
            }
            2 => {
                let value = value_for(key.as_bytes());
                store
                    .write_stream(key.as_bytes(), &mut Cursor::new(value))
                    .expect("stream");
            }
            _ => {
                let extra = format!("{key}+");
                store
                    .batch_write(&[
                        (key.as_bytes(), &value_for(key.as_bytes())),
                        (extra.as_bytes(), &value_for(extra.as_bytes())),
                    ])
                    .expect("batch");
                ack(&extra);
            }
        }
        ack(&key);
    }
}

fn assert_has(store: &DataStore, keys: &BTreeSet<String>) {
    for key in keys {
        let entry = store
            .read(key.as_bytes())
            .expect("read")
            .unwrap_or_else(|| panic!("{key} is lost"));
        assert!(*entry == *value_for(key.as_bytes()), "{key} changed");
    }
}

#[test]
fn every_mode_keeps_everything_across_drop_and_reopen() {
    if child::role().is_some() {
        return;
    }
    for mode in MODES {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store.mmblob");
        let store = OpenOptions::new()
            .durability(mode)
            .open(&path)
            .expect("open");
        let keys = std::cell::RefCell::new(BTreeSet::new());
        write_everything(
            &store,
            "k",
            40,
            |_| {},
            |k| {
                keys.borrow_mut().insert(k.to_owned());
            },
        );
        let mut keys = keys.into_inner();
        assert!(store.delete(b"k0").expect("delete"));
        keys.remove("k0");
        drop(store);
        let store = DataStore::open_existing(&path).expect("reopen");
        assert_has(&store, &keys);
        assert_eq!(store.len(), keys.len(), "{mode:?}");
        assert!(
            !store.exists(b"k0").expect("exists"),
            "{mode:?}: delete lost"
        );
    }
}

#[test]
fn sync_works_in_every_mode_and_on_read_only_handles() {
    if child::role().is_some() {
        return;
    }
    for mode in MODES {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store.mmblob");
        let store = OpenOptions::new()
            .durability(mode)
            .open(&path)
            .expect("open");
        store.sync().expect("sync of an empty store");
        store.write(b"a", b"1").expect("write");
        store.sync().expect("sync");
        store.sync().expect("sync again with nothing new");
        let reader = OpenOptions::new()
            .read_only(true)
            .open(&path)
            .expect("read-only");
        reader
            .sync()
            .expect("sync on a read-only handle is a no-op");
        store.compact().expect("compact");
        store.write(b"b", b"2").expect("write after compaction");
        store.sync().expect("sync after compaction");
        drop(store);
        let store = DataStore::open_existing(&path).expect("reopen");
        assert_eq!(store.len(), 2, "{mode:?}");
    }
}

/// The child for the kill test and the strace tests: writes with the mode
/// given as its seed (0 none, 1 flush, 2 sync; +10: eight threads).
#[test]
fn child_writes_with_durability() {
    if child::role().as_deref() != Some("durability") {
        return;
    }
    let seed = child::seed();
    let store = Arc::new(
        OpenOptions::new()
            .durability(mode_from(seed % 10))
            .open(child::store_path())
            .expect("child: open"),
    );
    if seed < 10 {
        write_everything(
            &store,
            "k",
            24,
            |k| child::say(&format!("begin {k}")),
            |k| child::say(&format!("ack {k}")),
        );
    } else {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    write_everything(
                        &store,
                        &format!("t{t}-"),
                        40,
                        |k| child::say(&format!("begin {k}")),
                        |k| child::say(&format!("ack {k}")),
                    );
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("writer thread");
        }
    }
    child::say("done");
}

#[test]
fn sync_with_eight_threads_keeps_every_acknowledged_write_after_a_kill() {
    if child::role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.mmblob");
    let mut writers = child::spawn("child_writes_with_durability", "durability", &path, 12);
    let mut acked = BTreeSet::new();
    while acked.len() < 150 {
        let event = writers.expect_event("150 acknowledgements");
        if let Some(key) = event.strip_prefix("ack ") {
            acked.insert(key.to_owned());
        }
    }
    for event in writers.kill_and_drain() {
        if let Some(key) = event.strip_prefix("ack ") {
            acked.insert(key.to_owned());
        }
    }
    let store = DataStore::open_existing(&path).expect("reopen after the kill");
    assert_has(&store, &acked);
    assert!(store.verify().expect("verify").is_ok());
}

/// What strace saw: the start and end (log line numbers) of each call.
struct Call {
    tid: String,
    name: String,
    start: usize,
    end: usize,
    is_ack: bool,
    /// The child announcing a write call it is about to make.
    is_begin: bool,
}

/// Parses `strace -f` output: complete calls, and calls split into an
/// `<unfinished ...>` line and a `<... name resumed>` line.
fn parse_strace(text: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some((tid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let name = resumed.split(' ').next().unwrap_or_default();
            if let Some(call) = calls
                .iter_mut()
                .rev()
                .find(|c| c.tid == tid && c.name == name && c.end == usize::MAX)
            {
                call.end = n;
            }
            continue;
        }
        let Some((name, _)) = rest.split_once('(') else {
            continue;
        };
        calls.push(Call {
            tid: tid.to_owned(),
            name: name.to_owned(),
            start: n,
            end: if line.ends_with("<unfinished ...>") {
                usize::MAX
            } else {
                n
            },
            is_ack: name == "write" && line.contains("@@mmblob@@ ack"),
            is_begin: name == "write" && line.contains("@@mmblob@@ begin"),
        });
    }
    calls
}

/// Runs the child under `strace -f` and returns its calls, or `None` when
/// strace is not installed or may not trace here: then the check is skipped
/// with a `skipped:` line, or fails when `MMBLOB_REQUIRE_STRACE=1` (set by
/// `./test`), so it can never pass silently.
fn strace_child(path: &Path, seed: u64) -> Option<Vec<Call>> {
    let test = "durability_modes (system-call order)";
    if !strace::available(test) {
        return None;
    }
    let log = path.with_extension("strace");
    let exe = std::env::current_exe().expect("test binary");
    let output = Command::new("strace")
        .args(["-f", "-qq", "-s", "40", "-o"])
        .arg(&log)
        .args([
            "-e",
            "trace=pwrite64,pwritev,pwritev2,fdatasync,fsync,write",
        ])
        .arg(&exe)
        .args([
            "--exact",
            "child_writes_with_durability",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(child::ROLE, "durability")
        .env(child::STORE, path)
        .env(child::SEED, seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    match output {
        Ok(output) if output.status.success() => {
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                stdout.contains("@@mmblob@@ done"),
                "the traced child did not finish"
            );
        }
        Ok(output) => {
            let why = String::from_utf8_lossy(&output.stderr);
            strace::unusable(test, why.trim());
            return None;
        }
        Err(e) => {
            strace::unusable(test, &e.to_string());
            return None;
        }
    }
    let text = std::fs::read_to_string(&log).expect("read the strace log");
    Some(parse_strace(&text))
}

/// For each acknowledgement that follows a store write on its thread: the
/// line after which the write's bytes were stored (the end of its `pwrite`,
/// or of the child's announcement when the bytes were copied into the
/// writable map) and the line of the acknowledgement. (A batch prints two
/// acknowledgements for one write; the second one is skipped.)
fn acknowledged_writes(calls: &[Call]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut last_write: std::collections::HashMap<&str, usize> = Default::default();
    for call in calls {
        if call.name.starts_with("pwrite") || call.is_begin {
            last_write.insert(&call.tid, call.end);
        } else if call.is_ack
            && let Some(written) = last_write.remove(call.tid.as_str())
        {
            out.push((written, call.start));
        }
    }
    out
}

fn syncs(calls: &[Call]) -> Vec<&Call> {
    calls
        .iter()
        .filter(|c| c.name == "fdatasync" || c.name == "fsync")
        .collect()
}

#[test]
fn sync_mode_acknowledges_only_after_fdatasync() {
    if child::role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(calls) = strace_child(&dir.path().join("store.mmblob"), 2) else {
        return;
    };
    let acked = acknowledged_writes(&calls);
    assert!(
        acked.len() >= 24,
        "{} acknowledged writes traced",
        acked.len()
    );
    let syncs = syncs(&calls);
    for (written, ack) in acked {
        assert!(
            syncs.iter().any(|s| s.start > written && s.end < ack),
            "a Sync write (line {written}) was acknowledged (line {ack}) without an fdatasync after it"
        );
    }
}

#[test]
fn flush_mode_hands_bytes_to_the_os_before_acknowledging_without_syncing() {
    if child::role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(calls) = strace_child(&dir.path().join("store.mmblob"), 1) else {
        return;
    };
    let acked = acknowledged_writes(&calls);
    assert!(
        acked.len() >= 24,
        "{} acknowledged writes traced",
        acked.len()
    );
    let first_write = acked[0].0;
    let syncs_while_writing = syncs(&calls)
        .iter()
        .filter(|s| s.start > first_write)
        .count();
    assert_eq!(
        syncs_while_writing, 0,
        "Flush mode does not fdatasync per write"
    );
}

#[test]
fn eight_sync_writers_share_fdatasyncs() {
    if child::role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(calls) = strace_child(&dir.path().join("store.mmblob"), 12) else {
        return;
    };
    let acked = acknowledged_writes(&calls);
    assert_eq!(acked.len(), 8 * 40, "every write was acknowledged once");
    let syncs = syncs(&calls);
    for &(written, ack) in &acked {
        assert!(
            syncs.iter().any(|s| s.start > written && s.end < ack),
            "a Sync write (line {written}) was acknowledged (line {ack}) before any fdatasync after it"
        );
    }
    assert!(
        syncs.len() < acked.len(),
        "group commit: {} fdatasyncs for {} writes",
        syncs.len(),
        acked.len()
    );
}
