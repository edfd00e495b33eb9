//! When the memory map cannot grow (address space exhausted), the write
//! that needed it fails cleanly, and it fails *before* its entry is complete
//! in the file. Otherwise another process could refresh in between, see the
//! valid entry, map it, and fault (SIGBUS) when the writer cut it off again.
//!
//! A child process caps its address space (`RLIMIT_AS`) just above what it
//! uses, then writes a batch and a stream that end past the 64 MiB the map
//! reserves. Each fails with `Error::Io`, the file keeps its length, the
//! batch leaves the file untouched (same modification time), and under
//! `strace` (when installed) the stream never writes its trailer. With the
//! cap lifted writes succeed again, and a reopen finds exactly those.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};

use mmblob::{DataStore, Error};
use support::child;

const MIB: usize = 1 << 20;
/// Enough to cross the map's first 64 MiB reservation.
const BIG: usize = 70 * MIB;
const STREAM_KEY: &str = "stream-big";

fn set_address_space_limit(limit: Option<u64>) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) }, 0);
    lim.rlim_cur = limit.map_or(lim.rlim_max, |l| l.min(lim.rlim_max));
    // SAFETY: setrlimit reads the struct; the soft limit stays within the hard one.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
}

/// Bytes of address space this process uses now.
fn address_space_in_use() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize");
    kib * 1024
}

/// A value of `len` bytes made on the fly, 1 MiB of memory at most.
struct Pattern {
    left: usize,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.left.min(buf.len());
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = (self.left - i) as u8;
        }
        self.left -= n;
        Ok(n)
    }
}

fn mtime(path: &std::path::Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

#[test]
fn child_writes_past_the_map() {
    if child::role().as_deref() != Some("no-room-to-map") {
        return;
    }
    let path = child::store_path();
    let store = DataStore::open(&path).expect("open");
    store.write(b"small", b"before").expect("write");
    let chunk = vec![7u8; MIB];
    let keys: Vec<String> = (0..BIG / MIB).map(|i| format!("batch-{i}")).collect();
    let batch: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_bytes(), &chunk[..])).collect();
    let tail = store.file_size().expect("size");
    let before = mtime(&path);

    set_address_space_limit(Some(address_space_in_use() + 48 * MIB as u64));
    child::say("limited");
    match store.batch_write(&batch) {
        Err(Error::Io { .. }) => {}
        other => panic!("batch past the map with no address space: {other:?}"),
    }
    assert_eq!(
        store.file_size().expect("size"),
        tail,
        "batch moved the tail"
    );
    assert_eq!(mtime(&path), before, "the failed batch wrote to the file");

    let key_at = mmblob::format::align_up(tail).expect("offset") + BIG as u64;
    child::say(&format!("stream key at {key_at}"));
    match store.write_stream(STREAM_KEY.as_bytes(), &mut Pattern { left: BIG }) {
        Err(Error::Io { .. }) => {}
        other => panic!("stream past the map with no address space: {other:?}"),
    }
    child::say("stream failed");
    assert_eq!(
        store.file_size().expect("size"),
        tail,
        "stream moved the tail"
    );
    assert_eq!(
        store.read(b"small").expect("read").as_deref(),
        Some(&b"before"[..])
    );
    set_address_space_limit(None);

    store
        .write(b"after", b"room again")
        .expect("write with room");
    store
        .write_stream(STREAM_KEY.as_bytes(), &mut Pattern { left: 3 * MIB })
        .expect("stream with room");
    child::say("done");
}

fn run_untraced(path: &std::path::Path) {
    let events =
        child::spawn("child_writes_past_the_map", "no-room-to-map", path, 0).wait_success();
    assert_eq!(events.last().map(String::as_str), Some("done"));
    check_reopened(path);
}

fn check_reopened(path: &std::path::Path) {
    let store = DataStore::open_existing(path).expect("reopen");
    assert_eq!(store.len(), 3, "small, after and the stream; no batch key");
    assert_eq!(
        store
            .read(STREAM_KEY.as_bytes())
            .expect("read")
            .map(|e| e.len()),
        Some(3 * MIB)
    );
    assert!(!store.exists(b"batch-0").expect("exists"));
    assert!(store.verify().expect("verify").is_ok());
}

/// Runs the child (under strace when it can) and checks the store it
/// leaves. Under strace: between the stream's start and its failure, no
/// write lands where the stream's key and trailer go.
#[test]
fn map_that_cannot_grow_fails_the_write_before_it_commits() {
    if child::role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.mmblob");
    let log = dir.path().join("strace.log");
    let output = Command::new("strace")
        .args(["-f", "-qq", "-s", "48", "-o"])
        .arg(&log)
        .args(["-e", "trace=pwrite64,pwritev,pwritev2,write"])
        .arg(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_writes_past_the_map",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(child::ROLE, "no-room-to-map")
        .env(child::STORE, &path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    match output {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !stderr.contains("panicked"),
                "the traced child failed: {stderr}"
            );
            eprintln!("strace cannot trace here; running the child without it");
            return run_untraced(&path);
        }
        Err(e) => {
            eprintln!("strace is not available ({e}); running the child without it");
            return run_untraced(&path);
        }
    }
    let text = std::fs::read_to_string(&log).expect("strace log");
    let marker = |what: &str| {
        text.lines()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} in the trace"))
    };
    let key_at: u64 = text
        .lines()
        .nth(marker("stream key at "))
        .and_then(|l| {
            let at = l.find("stream key at ")? + "stream key at ".len();
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .expect("the key offset");
    let (from, to) = (marker("stream key at "), marker("stream failed"));
    let trailer_write = text.lines().skip(from).take(to - from).find(|l| {
        l.contains("pwrite")
            && l.trim_end()
                .ends_with(&format!(", {key_at}) = {}", STREAM_KEY.len() + 32))
    });
    assert!(
        trailer_write.is_none(),
        "the failed stream wrote its key and trailer: {trailer_write:?}"
    );
    check_reopened(&path);
}
