//! `mmblob demo` at a small size: every step runs and reports.

// The tests run the `mmblob` binary, which is built with the `cli` feature.
#![cfg(feature = "cli")]

use std::process::Command;

use serde_json::Value;

fn demo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mmblob"))
        .arg("demo")
        .args(["--entries", "2000", "--size-mb", "2"])
        .args(args)
        .env_remove("MMBLOB_STORE")
        .env_remove("RUST_LOG")
        .output()
        .expect("run mmblob demo")
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmblob"))
        .arg("demo")
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
}
