//! The `mmblob` command, run as a user would: every command, streaming
//! through pipes, JSON output parsed back, import/export round trips.

// The tests run the `mmblob` binary, which is built with the `cli` feature.
#![cfg(feature = "cli")]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A temporary directory holding one store, and a way to run `mmblob` on it.
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

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mmblob"));
        command
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .env_remove("MMBLOB_STORE")
            .env_remove("RUST_LOG");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run mmblob")
    }

    /// Runs with `input` on stdin, fed from a thread so big inputs cannot deadlock.
    fn run_with_stdin(&self, args: &[&str], input: Vec<u8>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mmblob");
        let mut stdin = child.stdin.take().expect("stdin");
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().expect("wait for mmblob");
        feeder.join().expect("feeder thread").expect("write stdin");
        output
    }

    /// Runs and insists on success; returns stdout.
    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let output = self.run(args);
        assert_success(&output, args);
        output.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_slice(&self.ok(&all)).expect("valid JSON")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn assert_success(output: &Output, args: &[&str]) {
    assert!(
        output.status.success(),
        "mmblob {args:?} failed with {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

#[test]
fn put_from_a_file_then_get_to_stdout_and_to_a_file() {
    let cli = Cli::new();
    let source = cli.path("source.bin");
    std::fs::write(&source, pattern(10_000)).expect("write source");
    cli.ok(&["put", "docs/a.bin", path_str(&source)]);
    assert_eq!(cli.ok(&["get", "docs/a.bin"]), pattern(10_000));
    let copy = cli.path("copy.bin");
    cli.ok(&["get", "docs/a.bin", "-o", path_str(&copy)]);
    assert_eq!(std::fs::read(&copy).expect("read copy"), pattern(10_000));
}

#[test]
fn values_larger_than_a_pipe_buffer_stream_through_stdin_and_stdout() {
    let cli = Cli::new();
    let value = pattern(3 << 20);
    let put = cli.run_with_stdin(&["put", "big"], value.clone());
    assert_success(&put, &["put", "big"]);
    let got = cli.ok(&["get", "big"]);
    assert_eq!(got.len(), value.len());
    assert!(got == value, "3 MiB value came back different");
}

#[test]
fn empty_and_zero_byte_values_round_trip() {
    let cli = Cli::new();
    assert_success(&cli.run_with_stdin(&["put", "empty"], Vec::new()), &["put"]);
    assert_success(&cli.run_with_stdin(&["put", "zero"], vec![0]), &["put"]);
    assert_eq!(cli.ok(&["get", "empty"]), b"");
    assert_eq!(cli.ok(&["get", "zero"]), [0]);
}

#[test]
fn a_reader_that_stops_early_ends_get_quietly() {
    let cli = Cli::new();
    assert_success(
        &cli.run_with_stdin(&["put", "big"], pattern(4 << 20)),
        &["put"],
    );
    let mut child = cli
        .command(&["get", "big"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = [0u8; 16];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("read");
    let output = child.wait_with_output().expect("wait");
    assert_eq!(first.as_slice(), &pattern(16)[..]);
    assert!(output.status.success(), "{:?}", output.status);
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn del_removes_keys_and_force_ignores_missing_ones() {
    let cli = Cli::new();
    for key in ["a", "b", "c"] {
        assert_success(
            &cli.run_with_stdin(&["put", key], key.into()),
            &["put", key],
        );
    }
    cli.ok(&["del", "a", "b"]);
    assert_eq!(cli.ok(&["ls"]), b"c\n");
    let missing = cli.run(&["del", "c", "nope"]);
    assert_eq!(missing.status.code(), Some(3));
    assert_eq!(
        cli.ok(&["ls"]),
        b"",
        "existing keys are deleted even when others are missing"
    );
    cli.ok(&["del", "--force", "nope"]);
}

#[test]
fn ls_sorts_filters_and_reports_sizes_and_offsets() {
    let cli = Cli::new();
    for (key, len) in [("img/b", 100), ("img/a", 2048), ("txt/c", 1)] {
        assert_success(
            &cli.run_with_stdin(&["put", key], pattern(len)),
            &["put", key],
        );
    }
    assert_eq!(cli.ok(&["ls"]), b"img/a\nimg/b\ntxt/c\n");
    assert_eq!(cli.ok(&["ls", "--prefix", "img/"]), b"img/a\nimg/b\n");
    let long = String::from_utf8(cli.ok(&["ls", "--long", "--prefix", "img/a"])).expect("UTF-8");
    assert!(
        long.contains("2.00 KiB") && long.ends_with("img/a\n"),
        "{long}"
    );

    let listed = cli.json(&["ls"]);
    let listed = listed.as_array().expect("array");
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0]["key"], "img/a");
    assert_eq!(listed[0]["size"], 2048);
    assert_eq!(listed[2]["size"], 1);
    for entry in listed {
        let offset = entry["offset"].as_u64().expect("offset");
        assert_eq!(offset % 64, 0, "payloads are 64-byte aligned");
    }
}

#[test]
fn stat_reports_live_and_reclaimable_bytes() {
    let cli = Cli::new();
    assert_success(&cli.run_with_stdin(&["put", "k"], pattern(1000)), &["put"]);
    assert_success(&cli.run_with_stdin(&["put", "k"], pattern(500)), &["put"]);
    let stat = cli.json(&["stat"]);
    assert_eq!(stat["entries"], 1);
    assert_eq!(stat["live_bytes"], 500);
    assert_eq!(stat["format_version"], 1);
    assert_eq!(stat["damage"], 0);
    assert!(stat["reclaimable_bytes"].as_u64().expect("reclaimable") >= 1000);
    let file_size = std::fs::metadata(&cli.store).expect("store").len();
    assert_eq!(stat["file_size"], file_size);
    let human = String::from_utf8(cli.ok(&["stat"])).expect("UTF-8");
    assert!(
        human.contains("500 B") && human.contains("format version"),
        "{human}"
    );
}

#[test]
fn compact_gives_back_dead_space_and_keeps_values() {
    let cli = Cli::new();
    for _ in 0..3 {
        assert_success(
            &cli.run_with_stdin(&["put", "k"], pattern(100_000)),
            &["put"],
        );
    }
    assert_success(&cli.run_with_stdin(&["put", "gone"], pattern(10)), &["put"]);
    cli.ok(&["del", "gone"]);
    let report = cli.json(&["compact"]);
    let before = report["before"]["file_size"].as_u64().expect("before");
    let after = report["after"]["file_size"].as_u64().expect("after");
    assert!(after < before, "{report}");
    assert_eq!(report["after"]["reclaimable_bytes"], 0);
    assert_eq!(report["entries_kept"], 1);
    assert_eq!(std::fs::metadata(&cli.store).expect("store").len(), after);
    assert_eq!(cli.ok(&["get", "k"]), pattern(100_000));
    let human = String::from_utf8(cli.ok(&["compact"])).expect("UTF-8");
    assert!(
        human.contains("before") && human.contains("after"),
        "{human}"
    );
}

#[test]
fn verify_passes_a_sound_store_and_fails_a_damaged_one_with_status_4() {
    let cli = Cli::new();
    for key in ["first", "second", "third"] {
        assert_success(
            &cli.run_with_stdin(&["put", key], pattern(4096)),
            &["put", key],
        );
    }
    let report = cli.json(&["verify"]);
    assert_eq!(report["ok"], true);
    assert_eq!(report["entries_checked"], 3);

    let listed = cli.json(&["ls", "--prefix", "first"]);
    let offset = listed[0]["offset"].as_u64().expect("offset");
    let mut bytes = std::fs::read(&cli.store).expect("read store");
    bytes[offset as usize + 100] ^= 0xff;
    std::fs::write(&cli.store, bytes).expect("damage store");

    let damaged = cli.run(&["--json", "verify"]);
    assert_eq!(damaged.status.code(), Some(4));
    let report: Value = serde_json::from_slice(&damaged.stdout).expect("JSON");
    assert_eq!(report["ok"], false);
    assert_eq!(report["damaged"][0]["key"], "first");
    let stderr = String::from_utf8_lossy(&damaged.stderr);
    assert!(stderr.contains("damaged"), "{stderr}");
    assert_eq!(
        cli.ok(&["get", "second"]),
        pattern(4096),
        "other entries stay readable"
    );

    let get = cli.run(&["get", "first"]);
    assert_eq!(get.status.code(), Some(4), "get checks the checksum");
    assert!(get.stdout.is_empty());
    assert_eq!(cli.ok(&["get", "--no-verify", "first"]).len(), 4096);

    let target = cli.path("out");
    let export = cli.run(&["export", path_str(&target)]);
    assert_eq!(export.status.code(), Some(4));
    assert!(!target.join("first").exists());
    assert_eq!(
        std::fs::read(target.join("third")).expect("exported"),
        pattern(4096)
    );
}

#[test]
fn import_then_export_round_trips_a_directory_tree() {
    let cli = Cli::new();
    let source = cli.path("tree");
    let files: [(&str, Vec<u8>); 5] = [
        ("a.txt", b"alpha".to_vec()),
        ("empty", Vec::new()),
        ("nested/deeper/b.bin", pattern(70_000)),
        ("nested/large.bin", pattern(5 << 20)),
        ("nested/zero", vec![0]),
    ];
    for (name, bytes) in &files {
        let path = source.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }
    cli.ok(&["import", path_str(&source)]);
    let keys = String::from_utf8(cli.ok(&["ls"])).expect("UTF-8");
    let expected: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
    assert_eq!(keys.lines().collect::<Vec<_>>(), expected);

    let target = cli.path("restored");
    cli.ok(&["export", path_str(&target)]);
    for (name, bytes) in &files {
        let back = std::fs::read(target.join(name)).expect("exported file");
        assert!(back == *bytes, "{name} differs after the round trip");
    }
}

#[test]
fn import_skips_the_store_and_its_sidecar_files_inside_the_directory() {
    let cli = Cli::new();
    std::fs::write(cli.path("note.txt"), b"hi").expect("write");
    std::fs::write(cli.path("test.mmblob.index"), b"a snapshot").expect("write");
    cli.ok(&["import", path_str(cli.dir.path())]);
    assert_eq!(cli.ok(&["ls"]), b"note.txt\n");
}

#[test]
fn export_refuses_keys_that_would_escape_the_directory() {
    let cli = Cli::new();
    for key in [
        "../escaped",
        "/tmp/absolute-mmblob-test",
        "safe/file",
        "a/../b",
    ] {
        assert_success(
            &cli.run_with_stdin(&["put", key], b"x".to_vec()),
            &["put", key],
        );
    }
    let target = cli.path("out/inner");
    let output = cli.run(&["export", path_str(&target)]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused 3 key(s)") && stderr.contains("../escaped"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(target.join("safe/file")).expect("safe key exported"),
        b"x"
    );
    assert!(!cli.path("out/escaped").exists());
    assert!(!Path::new("/tmp/absolute-mmblob-test").exists());
}

#[cfg(unix)]
#[test]
fn export_does_not_follow_symlinks_out_of_the_directory() {
    let cli = Cli::new();
    assert_success(
        &cli.run_with_stdin(&["put", "link/file"], b"x".to_vec()),
        &["put"],
    );
    let target = cli.path("out");
    let outside = cli.path("outside");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::os::unix::fs::symlink(&outside, target.join("link")).expect("symlink");
    let output = cli.run(&["export", path_str(&target)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(!outside.join("file").exists());
}

#[test]
fn the_store_comes_from_the_environment_or_defaults_to_the_current_directory() {
    let cli = Cli::new();
    let from_env = cli.path("env.mmblob");
    let mut put = Command::new(env!("CARGO_BIN_EXE_mmblob"));
    put.args(["put", "k", "/dev/null"])
        .env("MMBLOB_STORE", &from_env);
    assert!(put.output().expect("run").status.success());
    assert!(from_env.exists());

    let mut put = Command::new(env!("CARGO_BIN_EXE_mmblob"));
    put.args(["put", "k", "/dev/null"])
        .env_remove("MMBLOB_STORE")
        .current_dir(cli.dir.path());
    assert!(put.output().expect("run").status.success());
    assert!(cli.path("store.mmblob").exists());
}

#[test]
fn read_only_commands_work_while_another_handle_writes() {
    let cli = Cli::new();
    let writer = mmblob::DataStore::open(&cli.store).expect("open writer");
    writer.write(b"live", b"value").expect("write");
    assert_eq!(cli.ok(&["get", "live"]), b"value");
    assert_eq!(cli.ok(&["ls"]), b"live\n");
    cli.ok(&["stat"]);
    cli.ok(&["verify"]);
    cli.ok(&["export", path_str(&cli.path("out"))]);
    assert_eq!(
        std::fs::read(cli.path("out/live")).expect("exported"),
        b"value"
    );
}

#[test]
fn every_command_has_help_with_an_example() {
    let cli = Cli::new();
    let top = String::from_utf8(cli.ok(&["--help"])).expect("UTF-8");
    assert!(
        top.contains("Exit codes:") && top.contains("3  key not found"),
        "{top}"
    );
    for command in [
        "demo", "put", "get", "del", "ls", "stat", "verify", "compact", "import", "export",
    ] {
        let help = String::from_utf8(cli.ok(&[command, "--help"])).expect("UTF-8");
        assert!(help.contains("Examples:\n  mmblob"), "{command}: {help}");
        assert!(help.contains("Exit codes"), "{command}: {help}");
    }
}
