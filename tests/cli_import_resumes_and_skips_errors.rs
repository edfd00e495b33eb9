//! `mmblob import` in the first hour of use: re-importing an unchanged tree
//! does not grow the store (so an interrupted import is resumed by running
//! it again), changed files are written again, and `--skip-errors` goes on
//! past unreadable files and directories, lists them and exits with 1.

// The tests run the `mmblob` binary, which is built with the `cli` feature.
#![cfg(feature = "cli")]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// `nobody`: root reads every file, so the unreadable-file test drops to
/// this user when it runs as root.
const NOBODY: u32 = 65534;

struct Cli {
    dir: tempfile::TempDir,
    store: PathBuf,
    /// Run the tool as `nobody` (the test runs as root).
    as_nobody: bool,
}

impl Cli {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("test.mmblob");
        Cli {
            dir,
            store,
            as_nobody: false,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mmblob"));
        command
            .current_dir(self.dir.path())
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .env_remove("MMBLOB_STORE")
            .env_remove("RUST_LOG");
        if self.as_nobody {
            command.uid(NOBODY).gid(NOBODY);
        }
        command.output().expect("run mmblob")
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = self.run(&all);
        assert!(
            output.status.success(),
            "mmblob {all:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("JSON")
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
        path
    }

    fn store_len(&self) -> u64 {
        std::fs::metadata(&self.store).expect("store").len()
    }

    fn keys(&self) -> String {
        String::from_utf8(self.run(&["ls"]).stdout).expect("UTF-8")
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect()
}

#[test]
fn reimporting_an_unchanged_tree_does_not_grow_the_store() {
    let cli = Cli::new();
    for i in 0..50 {
        cli.file(
            &format!("tree/small/{i}.txt"),
            format!("file {i}").as_bytes(),
        );
    }
    cli.file("tree/large.bin", &pattern(6 << 20, 3));
    cli.file("tree/empty", b"");

    let first = cli.json(&["import", "tree"]);
    assert_eq!(first["imported"], 52, "{first}");
    let len = cli.store_len();

    let again = cli.json(&["import", "tree"]);
    assert_eq!(again["imported"], 0, "{again}");
    assert_eq!(again["unchanged"], 52, "{again}");
    assert_eq!(cli.store_len(), len, "an unchanged import grew the store");

    // Same length, different bytes: written again, small and large alike.
    cli.file("tree/small/7.txt", b"file X");
    let mut large = pattern(6 << 20, 3);
    large[5 << 20] ^= 1;
    cli.file("tree/large.bin", &large);
    let changed = cli.json(&["import", "tree"]);
    assert_eq!(changed["imported"], 2, "{changed}");
    assert_eq!(changed["unchanged"], 50, "{changed}");
    let value = cli.run(&["get", "large.bin"]).stdout;
    assert!(value == large, "the changed large file was stored");
    assert_eq!(cli.run(&["get", "small/7.txt"]).stdout, b"file X");
}

#[test]
fn an_interrupted_import_resumes_where_it_stopped() {
    let cli = Cli::new();
    for i in 0..40 {
        cli.file(&format!("tree/{i:02}.bin"), &pattern(100_000, i as u8 + 1));
    }
    // Half the tree got in before the import was stopped.
    let half = cli.dir.path().join("half");
    std::fs::create_dir(&half).expect("mkdir");
    for i in 0..20 {
        let name = format!("{i:02}.bin");
        std::fs::copy(cli.dir.path().join("tree").join(&name), half.join(&name)).expect("copy");
    }
    cli.json(&["import", "half"]);
    let resumed = cli.json(&["import", "tree"]);
    assert_eq!(resumed["imported"], 20, "{resumed}");
    assert_eq!(resumed["unchanged"], 20, "{resumed}");
    assert_eq!(cli.keys().lines().count(), 40);
    // The store holds each value once, not the first half twice.
    assert!(
        cli.store_len() < 41 * 100_000 + 40 * 200,
        "{}",
        cli.store_len()
    );
}

#[test]
fn skip_errors_goes_on_past_unreadable_files_and_lists_them() {
    let mut cli = Cli::new();
    // Root can read anything: then run the tool as `nobody`, in a directory
    // it may write.
    let root = std::fs::metadata("/proc/self").expect("/proc/self").uid() == 0;
    if root {
        cli.as_nobody = true;
        std::fs::set_permissions(cli.dir.path(), PermissionsExt::from_mode(0o777)).expect("chmod");
    }
    cli.file("tree/a.txt", b"a");
    cli.file("tree/sub/b.txt", b"b");
    let secret = cli.file("tree/secret.txt", b"no");
    let locked = cli.file("tree/locked/c.txt", b"c");
    std::fs::set_permissions(&secret, PermissionsExt::from_mode(0o000)).expect("chmod");
    let locked_dir = locked.parent().expect("dir").to_owned();
    std::fs::set_permissions(&locked_dir, PermissionsExt::from_mode(0o000)).expect("chmod");
    let restore =
        || std::fs::set_permissions(&locked_dir, PermissionsExt::from_mode(0o755)).expect("chmod");

    let stopped = cli.run(&["import", "tree"]);
    assert!(
        !stopped.status.success(),
        "an unreadable file stops a plain import"
    );
    let message = String::from_utf8_lossy(&stopped.stderr);
    assert!(message.contains("--skip-errors"), "{message}");

    let output = cli.run(&["import", "tree", "--skip-errors"]);
    restore();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let message = String::from_utf8_lossy(&output.stderr);
    for unreadable in [&secret, &locked_dir] {
        assert!(
            message.contains(&format!("could not read {}", rel(&cli, unreadable))),
            "{unreadable:?} not listed: {message}"
        );
    }
    assert_eq!(cli.keys(), "a.txt\nsub/b.txt\n");

    std::fs::set_permissions(&locked_dir, PermissionsExt::from_mode(0o000)).expect("chmod");
    let output = cli.run(&["--json", "import", "tree", "--skip-errors"]);
    restore();
    assert_eq!(output.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["unchanged"], 2, "{report}");
    let failed: Vec<&str> = report["failed"]
        .as_array()
        .expect("failed")
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    assert_eq!(failed, [rel(&cli, &locked_dir), rel(&cli, &secret)]);
}

/// `path` as the tool names it when run on `tree` from the test directory.
fn rel(cli: &Cli, path: &Path) -> String {
    path.strip_prefix(cli.dir.path())
        .expect("inside")
        .display()
        .to_string()
}
