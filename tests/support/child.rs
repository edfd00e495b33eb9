//! Child processes: a test re-runs one test function of its own binary in a
//! new process, tells it what to do through environment variables, and reads
//! what it acknowledges from its stdout, one line per event.

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// Environment variable that tells a child test which role to play; the
/// child test returns at once when it is absent (a normal test run).
pub const ROLE: &str = "MMBLOB_TEST_CHILD_ROLE";
/// Environment variable holding the store path for the child.
pub const STORE: &str = "MMBLOB_TEST_CHILD_STORE";
/// Environment variable holding a seed or other number for the child.
pub const SEED: &str = "MMBLOB_TEST_CHILD_SEED";

/// Marks the lines a child prints for its parent; the test harness prints
/// its own lines (and may put text before ours on the same line).
const MARK: &str = "@@mmblob@@ ";

/// The role this process plays, if it was started by [`spawn`].
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// The store path given to this child.
pub fn store_path() -> std::path::PathBuf {
    std::env::var_os(STORE)
        .expect("child started without a store path")
        .into()
}

/// The number given to this child.
pub fn seed() -> u64 {
    std::env::var(SEED)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Prints one event for the parent. Stdout is line-buffered, so the line is
/// in the pipe when this returns.
pub fn say(event: &str) {
    println!("{MARK}{event}");
}

/// A running child and its event lines.
pub struct ChildProcess {
    pub child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

/// Starts `test_name` of the current test binary as a child in `role`.
pub fn spawn(test_name: &str, role: &str, store: &Path, seed: u64) -> ChildProcess {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            test_name,
            "--nocapture",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(STORE, store)
        .env(SEED, seed.to_string())
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child test process");
    let stdout = child.stdout.take().expect("child stdout is piped");
    ChildProcess {
        child,
        lines: BufReader::new(stdout).lines(),
    }
}

impl ChildProcess {
    /// The next event the child printed, or `None` once its stdout closed.
    /// A line cut off by the child's death (no newline) is not an event.
    pub fn next_event(&mut self) -> Option<String> {
        for line in self.lines.by_ref() {
            let line = line.expect("read the child's stdout");
            if let Some(at) = line.find(MARK) {
                return Some(line[at + MARK.len()..].to_owned());
            }
        }
        None
    }

    /// Waits for an event; panics with `what` if the child ends first.
    pub fn expect_event(&mut self, what: &str) -> String {
        self.next_event()
            .unwrap_or_else(|| panic!("child ended before {what}"))
    }

    /// Kills the child with SIGKILL and returns every event it had already
    /// printed before it died.
    pub fn kill_and_drain(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let mut rest = Vec::new();
        while let Some(event) = self.next_event() {
            rest.push(event);
        }
        let _ = self.child.wait();
        rest
    }

    /// Waits for the child to exit on its own and asserts that it passed.
    pub fn wait_success(mut self) -> Vec<String> {
        let mut rest = Vec::new();
        while let Some(event) = self.next_event() {
            rest.push(event);
        }
        let status = self.child.wait().expect("wait for the child");
        assert!(status.success(), "child test failed: {status}");
        rest
    }

    /// Writes one line to the child's stdin.
    pub fn tell(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("child stdin is piped");
        writeln!(stdin, "{line}").expect("write to the child");
        stdin.flush().expect("flush to the child");
    }
}

/// In a child: blocks until the parent writes a line (or closes stdin).
pub fn wait_for_parent() -> String {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .expect("read from the parent");
    line.trim().to_owned()
}
