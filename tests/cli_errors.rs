//! How `mmblob` fails: one line on stderr naming the path or key, and the
//! exit status documented in `mmblob --help`. Never a panic.

// The tests run the `mmblob` binary, which is built with the `cli` feature.
#![cfg(feature = "cli")]

use std::path::PathBuf;
use std::process::{Command, Output};

/// A temporary directory and a way to run `mmblob` with a store in it.
struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        Cli {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, store: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mmblob"))
            .arg("--store")
            .arg(self.path(store))
            .args(args)
            .env_remove("MMBLOB_STORE")
            .env_remove("RUST_LOG")
            .output()
            .expect("run mmblob")
    }
}

/// Checks the exit status and that stderr is one line containing every `needle`.
fn assert_fails(output: &Output, code: i32, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} missing in: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn get_of_a_missing_key_exits_3_and_names_the_key() {
    let cli = Cli::new();
    assert!(
        cli.run("s.mmblob", &["put", "present", "/dev/null"])
            .status
            .success()
    );
    let output = cli.run("s.mmblob", &["get", "absent"]);
    assert_fails(&output, 3, &["\"absent\"", "not found", "mmblob ls"]);
    assert!(output.stdout.is_empty());
}

#[test]
fn a_file_that_is_not_a_store_exits_6_and_is_left_unchanged() {
    let cli = Cli::new();
    let content = b"just some notes, not a store\n".repeat(10);
    std::fs::write(cli.path("notes.txt"), &content).expect("write");
    for args in [&["ls"][..], &["put", "k", "/dev/null"], &["compact"]] {
        let output = cli.run("notes.txt", args);
        assert_fails(&output, 6, &["notes.txt", "not an mmblob store"]);
    }
    assert_eq!(std::fs::read(cli.path("notes.txt")).expect("read"), content);
}

#[test]
fn a_damaged_store_header_exits_4_and_is_left_unchanged() {
    let cli = Cli::new();
    assert!(
        cli.run("s.mmblob", &["put", "k", "/dev/null"])
            .status
            .success()
    );
    let path = cli.path("s.mmblob");
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[30] ^= 1;
    std::fs::write(&path, &bytes).expect("damage header");
    for args in [&["ls"][..], &["verify"], &["put", "k2", "/dev/null"]] {
        assert_fails(
            &cli.run("s.mmblob", args),
            4,
            &["s.mmblob", "header is damaged"],
        );
    }
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
}

#[test]
fn a_directory_as_store_exits_6() {
    let cli = Cli::new();
    std::fs::create_dir(cli.path("dir")).expect("mkdir");
    assert_fails(&cli.run("dir", &["stat"]), 6, &["not a regular file"]);
}

#[test]
fn a_locked_store_exits_5_for_writers_only() {
    let cli = Cli::new();
    let writer = mmblob::DataStore::open(cli.path("s.mmblob")).expect("open");
    writer.write(b"k", b"v").expect("write");
    let output = cli.run("s.mmblob", &["put", "other", "/dev/null"]);
    assert_fails(&output, 5, &["s.mmblob", "locked", "another process"]);
    assert!(cli.run("s.mmblob", &["get", "k"]).status.success());
    drop(writer);
    assert!(
        cli.run("s.mmblob", &["put", "other", "/dev/null"])
            .status
            .success()
    );
}

#[cfg(unix)]
#[test]
fn a_read_only_store_file_exits_7_on_put() {
    use std::os::unix::fs::PermissionsExt;
    let cli = Cli::new();
    assert!(
        cli.run("s.mmblob", &["put", "k", "/dev/null"])
            .status
            .success()
    );
    let path = cli.path("s.mmblob");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    let before = std::fs::read(&path).expect("read");
    let output = cli.run("s.mmblob", &["put", "other", "/dev/null"]);
    assert_fails(&output, 7, &["s.mmblob", "permission denied"]);
    assert_eq!(std::fs::read(&path).expect("read"), before);
    assert!(
        cli.run("s.mmblob", &["get", "k"]).status.success(),
        "reading still works"
    );
}

#[test]
fn a_missing_store_is_reported_by_read_commands_and_not_created() {
    let cli = Cli::new();
    for args in [
        &["get", "k"][..],
        &["ls"],
        &["stat"],
        &["verify"],
        &["del", "k"],
        &["compact"],
    ] {
        let output = cli.run("missing.mmblob", args);
        assert_fails(&output, 1, &["no store at", "missing.mmblob"]);
    }
    assert!(!cli.path("missing.mmblob").exists());
}

#[test]
fn put_of_a_missing_input_file_names_it() {
    let cli = Cli::new();
    let output = cli.run("s.mmblob", &["put", "k", "/no/such/input"]);
    assert_fails(&output, 1, &["/no/such/input"]);
}

#[test]
fn put_of_an_unreadable_input_blames_the_input_and_stores_nothing() {
    let cli = Cli::new();
    let input = cli.path("a-directory");
    std::fs::create_dir(&input).expect("mkdir");
    let output = cli.run("s.mmblob", &["put", "k", input.to_str().expect("UTF-8")]);
    assert_fails(&output, 1, &["cannot read", "a-directory"]);
    let get = cli.run("s.mmblob", &["get", "k"]);
    assert_eq!(get.status.code(), Some(3), "nothing is stored");
}

#[test]
fn usage_errors_exit_2() {
    let cli = Cli::new();
    assert_eq!(cli.run("s.mmblob", &["frobnicate"]).status.code(), Some(2));
    assert_eq!(cli.run("s.mmblob", &["get"]).status.code(), Some(2));
    assert_eq!(
        cli.run("s.mmblob", &["ls", "--bogus"]).status.code(),
        Some(2)
    );
    assert_fails(
        &cli.run("s.mmblob", &["put", "", "/dev/null"]),
        2,
        &["invalid key"],
    );
}

#[test]
fn import_of_a_file_instead_of_a_directory_is_a_usage_error() {
    let cli = Cli::new();
    std::fs::write(cli.path("file"), b"x").expect("write");
    let file = cli.path("file");
    let output = cli.run("s.mmblob", &["import", file.to_str().expect("UTF-8")]);
    assert_fails(&output, 2, &["not a directory"]);
}
