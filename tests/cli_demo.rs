//! `mmblob demo` at a small size: every step runs and reports, nothing is
//! left in the temporary directory (also after Ctrl-C), and a demo that
//! would not fit on the disk says how much it needs before it starts.

// The tests run the `mmblob` binary, which is built with the `cli` feature.
#![cfg(feature = "cli")]

use std::process::Command;

use serde_json::Value;

fn demo(args: &[&str]) -> std::process::Output {
    demo_in(&tempfile::tempdir().expect("temp dir"), args)
}

/// Runs a small demo with `tmp` as its temporary directory.
fn demo_in(tmp: &tempfile::TempDir, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mmblob"))
        .arg("demo")
        .args(["--entries", "2000", "--size-mb", "2"])
        .args(args)
        .env("TMPDIR", tmp.path())
        .env_remove("MMBLOB_STORE")
        .env_remove("RUST_LOG")
        .output()
        .expect("run mmblob demo")
}

fn leftovers(tmp: &tempfile::TempDir) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tmp.path())
        .expect("read temp dir")
        .map(|e| e.expect("entry").path())
        .collect()
}

#[test]
fn demo_leaves_nothing_in_the_temporary_directory() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let output = demo_in(&tmp, &["--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(leftovers(&tmp), Vec::<std::path::PathBuf>::new());
}

#[test]
fn a_demo_too_large_for_the_disk_says_what_it_needs_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // A 1 TiB value: more than this disk holds.
    let output = Command::new(env!("CARGO_BIN_EXE_mmblob"))
        .args(["demo", "--size-mb", "1048576"])
        .env("TMPDIR", tmp.path())
        .env_remove("MMBLOB_STORE")
        .env_remove("RUST_LOG")
        .output()
        .expect("run mmblob demo");
    let message = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains("needs about 2.") && message.contains("TiB of free space"),
        "{message}"
    );
    assert!(message.contains("--size-mb"), "{message}");
    assert_eq!(leftovers(&tmp), Vec::<std::path::PathBuf>::new());

    let kept = tmp.path().join("kept.mmblob");
    let output = Command::new(env!("CARGO_BIN_EXE_mmblob"))
        .args(["demo", "--size-mb", "1048576", "--store"])
        .arg(&kept)
        .env_remove("MMBLOB_STORE")
        .output()
        .expect("run mmblob demo");
    assert_eq!(output.status.code(), Some(1));
    assert!(!kept.exists(), "nothing is created");
}

#[test]
fn demo_reports_every_step_as_json() {
    let output = demo(&["--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let names: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    for step in [
        "batch write",
        "stream in",
        "random reads",
        "parallel iter",
        "verify",
        "compact",
    ] {
        assert!(names.contains(&step), "{step} missing from {names:?}");
    }
    assert_eq!(report["live_entries"], 2000 - 200 + 1);
    assert_eq!(report["kept"], false);
    let before = report["file_size_before_compact"].as_u64().expect("before");
    let after = report["file_size_after_compact"].as_u64().expect("after");
    assert!(after < before);
    let store = report["store"].as_str().expect("store path");
    assert!(
        !std::path::Path::new(store).exists(),
        "temporary store is removed"
    );
}

#[test]
fn demo_prints_a_table_and_keeps_a_store_given_with_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("demo.mmblob");
    let store_arg = store.to_str().expect("UTF-8");
    let output = demo(&["--store", store_arg]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(table.starts_with("step"), "{table}");
    assert!(
        table.contains("entries/s") && table.contains("/s"),
        "{table}"
    );
    assert!(store.exists());

    let again = demo(&["--store", store_arg]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing store is never reused"
    );
}

#[test]
fn ctrl_c_removes_the_temporary_store() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmblob"))
        .arg("demo")
        .env("TMPDIR", tmp.path())
        .env_remove("MMBLOB_STORE")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn mmblob demo");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut header = String::new();
    stderr.read_line(&mut header).expect("header line");
    let store = header.trim_end().rsplit(" in ").next().expect("store path");
    let dir = std::path::Path::new(store)
        .parent()
        .expect("temp dir")
        .to_owned();
    assert!(dir.exists(), "{header}");
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(interrupted.success());
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert_eq!(leftovers(&tmp), Vec::<std::path::PathBuf>::new());
}
