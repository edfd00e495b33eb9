//! Helpers of the remote tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use mmblob::{DataStore, OpenOptions};

/// The `mmblob` binary.
pub fn mmblob() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mmblob"));
    cmd.env_remove("MMBLOB_STORE").env_remove("RUST_LOG");
    cmd
}

/// A value derived from `i`.
pub fn value(i: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i.wrapping_mul(131) as usize + j * 7) as u8)
        .collect()
}

/// Writes keys `k{i}` for `i` in `range`.
pub fn write_range(store: &DataStore, range: std::ops::Range<u64>, len: usize) {
    for i in range {
        store
            .write(format!("k{i}").as_bytes(), &value(i, len))
            .unwrap();
    }
}

/// Opens a replica the way readers do.
pub fn open_replica(path: &Path) -> DataStore {
    OpenOptions::new()
        .read_only(true)
        .create(false)
        .open(path)
        .unwrap()
}

/// Every live entry of `a` is in `b` with the same bytes, and nothing else.
pub fn assert_same(a: &DataStore, b: &DataStore) {
    assert_eq!(a.len(), b.len(), "entry counts differ");
    for key in a.keys() {
        let want = a.read(&key).unwrap().unwrap();
        let got = b
            .read(&key)
            .unwrap()
            .unwrap_or_else(|| panic!("{} missing", String::from_utf8_lossy(&key)));
        assert!(*want == *got, "{} differs", String::from_utf8_lossy(&key));
    }
}

/// Lines of a child's stdout, read on a thread.
pub struct Lines {
    rx: Receiver<String>,
}

impl Lines {
    /// Starts reading `stdout`.
    pub fn new(stdout: ChildStdout) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }

    /// Waits up to `timeout` for a line for which `pred` holds.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(line) if pred(&line) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

/// Spawns `mmblob` with `args`, stdout piped.
pub fn spawn(args: &[&str]) -> (Child, Lines) {
    let mut child = mmblob()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = Lines::new(child.stdout.take().unwrap());
    (child, lines)
}

/// The `"end"` number of a `--json` line.
pub fn json_end(line: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get("end")?.as_u64()
}

/// Kills a child with SIGKILL and reaps it.
pub fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads a whole stream into a 64-bit hash.
pub fn hash_reader(mut r: impl Read) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            return h.finish();
        }
        h.write(&buf[..n]);
    }
}

/// A reader of `len` pseudo-random bytes (for streamed values).
pub struct Pattern {
    pub left: u64,
    pub state: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let bytes = self.state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}
