//! Every `mmblob` command that changes the store syncs it before it reports
//! success (seen under `strace`: an `fdatasync` after the last write to the
//! store), `--no-sync` skips that, and `--help` says so. `--json` works for
//! every command, or is refused with a usage error: never ignored.

// The tests run the `mmblob` binary, which is built with the `cli` feature.
#![cfg(feature = "cli")]

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use support::strace;

struct Cli {
    dir: tempfile::TempDir,
    store: PathBuf,
}

impl Cli {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("test.mmblob");
        Cli { dir, store }
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(self.dir.path())
            .env("MMBLOB_STORE", &self.store)
            .env_remove("RUST_LOG")
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(env!("CARGO_BIN_EXE_mmblob"), args)
            .output()
            .expect("run mmblob")
    }

    fn ok(&self, args: &[&str]) -> Output {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "mmblob {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = self.ok(&all);
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "mmblob {all:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, bytes).expect("write");
        path.to_str().expect("UTF-8").to_owned()
    }

    /// The system calls of `mmblob args` that write to a file or sync one,
    /// in order, as `(name, first argument)`.
    fn traced(&self, args: &[&str]) -> Option<Vec<(String, String)>> {
        let test = "mutating commands sync before reporting success";
        if !strace::available(test) {
            return None;
        }
        let log = self.dir.path().join("strace.log");
        let mut all = vec![
            "-f",
            "-qq",
            "-o",
            log.to_str().expect("UTF-8"),
            "-e",
            "trace=pwrite64,pwritev,pwritev2,write,fallocate,fdatasync,fsync",
            env!("CARGO_BIN_EXE_mmblob"),
        ];
        all.extend_from_slice(args);
        let output = self.command("strace", &all).output().expect("run strace");
        if !output.status.success() && !log.exists() {
            strace::unusable(test, String::from_utf8_lossy(&output.stderr).trim());
            return None;
        }
        assert!(
            output.status.success(),
            "mmblob {args:?} under strace: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = std::fs::read_to_string(&log).expect("strace log");
        std::fs::remove_file(&log).expect("remove log");
        Some(
            text.lines()
                .filter_map(|line| {
                    let call = line.split_once(' ')?.1.trim_start();
                    let (name, rest) = call.split_once('(')?;
                    let fd = rest.split([',', ')']).next()?.to_owned();
                    Some((name.to_owned(), fd))
                })
                .collect(),
        )
    }
}

/// Whether the last positional write or reservation (an append to the
/// store) is followed by an `fdatasync` or `fsync` of the same descriptor.
fn synced_after_last_write(calls: &[(String, String)]) -> bool {
    // The store is appended to with positional writes, or by copying into a
    // writable map of space reserved with `fallocate` (which makes no system
    // call of its own, so the reservation stands for those writes); plain
    // writes go to the terminal and to the index sidecar, a cache that
    // needs no sync.
    let Some(last) = calls
        .iter()
        .rposition(|(name, _)| name.starts_with("pwrite") || name == "fallocate")
    else {
        return false;
    };
    let fd = &calls[last].1;
    calls[last..]
        .iter()
        .any(|(name, sync_fd)| (name == "fdatasync" || name == "fsync") && sync_fd == fd)
}

#[test]
fn mutating_commands_sync_before_reporting_success_unless_told_not_to() {
    let cli = Cli::new();
    let input = cli.file("value.bin", b"some bytes");
    cli.file("tree/a.txt", b"a");
    cli.file("tree/b.txt", b"b");
    cli.ok(&["put", "first", &input]);
    let runs: [(&[&str], &[&str]); 4] = [
        (&["put", "k", &input], &["put", "k2", &input, "--no-sync"]),
        (&["import", "tree"], &["import", "tree", "--no-sync"]),
        (&["del", "k"], &["del", "k2", "--no-sync"]),
        (&["compact"], &["compact", "--no-sync"]),
    ];
    for (synced, unsynced) in runs {
        let Some(calls) = cli.traced(synced) else {
            return;
        };
        assert!(
            synced_after_last_write(&calls),
            "mmblob {synced:?} reported success without syncing: {calls:?}"
        );
        if unsynced[0] == "import" {
            // Re-importing an unchanged tree writes nothing; change it.
            cli.file("tree/b.txt", b"changed");
        }
        let calls = cli.traced(unsynced).expect("strace ran before");
        if unsynced[0] != "compact" {
            // (Compaction always syncs its new file before the rename.)
            assert!(
                !synced_after_last_write(&calls),
                "mmblob {unsynced:?} synced anyway: {calls:?}"
            );
        }
    }
}

#[test]
fn help_of_every_mutating_command_says_it_syncs_and_offers_no_sync() {
    let cli = Cli::new();
    for command in ["put", "del", "import", "compact"] {
        let help = String::from_utf8(cli.ok(&[command, "--help"]).stdout).expect("UTF-8");
        assert!(help.contains("--no-sync"), "{command}: {help}");
        assert!(help.contains("fdatasync"), "{command}: {help}");
        assert!(
            help.contains("synced") || help.contains("sync"),
            "{command}: {help}"
        );
    }
    let top = String::from_utf8(cli.ok(&["--help"]).stdout).expect("UTF-8");
    assert!(top.contains("before they report success"), "{top}");
}

#[test]
fn json_reports_of_put_get_del_import_export() {
    let cli = Cli::new();
    let input = cli.file("value.bin", &[7u8; 1000]);
    let put = cli.json(&["put", "photos/cat", &input]);
    assert_eq!(put["key"], "photos/cat");
    assert_eq!(put["size"], 1000);
    assert_eq!(put["synced"], true);

    let get = cli.json(&["get", "photos/cat", "-o", "out.bin"]);
    assert_eq!(get["size"], 1000);
    assert_eq!(get["output"], "out.bin");
    assert_eq!(get["checksum_verified"], true);
    assert_eq!(
        std::fs::read(cli.dir.path().join("out.bin")).expect("out"),
        [7u8; 1000]
    );

    cli.file("tree/a.txt", b"a");
    cli.file("tree/sub/b.txt", b"bb");
    let import = cli.json(&["import", "tree"]);
    assert_eq!(import["imported"], 2, "{import}");
    assert_eq!(import["bytes"], 3, "{import}");
    assert_eq!(import["unchanged"], 0, "{import}");
    assert_eq!(import["failed"], Value::Array(Vec::new()));

    let export = cli.json(&["export", "restored"]);
    assert_eq!(export["exported"], 3, "{export}");
    assert_eq!(export["skipped"], Value::Array(Vec::new()));

    let del = cli.json(&["del", "a.txt", "missing", "--force"]);
    assert_eq!(del["deleted"], 1, "{del}");
    assert_eq!(del["missing"], serde_json::json!(["missing"]));
    let ls = cli.json(&["ls"]);
    assert_eq!(ls.as_array().expect("list").len(), 2);
}

#[test]
fn json_for_get_to_standard_output_is_a_usage_error() {
    let cli = Cli::new();
    let input = cli.file("value.bin", b"value");
    cli.ok(&["put", "k", &input]);
    for args in [
        &["--json", "get", "k"][..],
        &["--json", "get", "k", "-o", "-"],
    ] {
        let output = cli.run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "nothing on stdout for {args:?}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(message.contains("-o FILE"), "{message}");
    }
}
