//! The `mmblob` commands `mv`, `cp` (within a store and into another),
//! `info` and `backup`, run as a user would, with their JSON output parsed
//! back and their exit codes checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn mmblob(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmblob"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("MMBLOB_STORE")
        .env_remove("RUST_LOG")
        .output()
        .expect("run mmblob")
}

fn ok(store: &Path, args: &[&str]) -> Vec<u8> {
    let out = mmblob(store, args);
    assert!(
        out.status.success(),
        "mmblob {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn code(store: &Path, args: &[&str]) -> (i32, String) {
    let out = mmblob(store, args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.mmblob");
    let db = mmblob::DataStore::open(&store).unwrap();
    db.write(b"a", b"apple").unwrap();
    db.write(b"b", b"banana").unwrap();
    db.close().unwrap();
    (dir, store)
}

#[test]
fn mv_renames_and_refuses_missing_keys_and_clobbering_when_asked() {
    let (_dir, store) = setup();
    ok(&store, &["mv", "a", "c"]);
    assert_eq!(ok(&store, &["get", "c"]), b"apple");
    assert_eq!(code(&store, &["get", "a"]).0, 3);
    assert_eq!(code(&store, &["mv", "nope", "x"]).0, 3);
    let (status, err) = code(&store, &["mv", "c", "b", "--no-clobber"]);
    assert_eq!(status, 1, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(ok(&store, &["get", "b"]), b"banana");
    ok(&store, &["mv", "c", "b"]);
    assert_eq!(ok(&store, &["get", "b"]), b"apple");
}

#[test]
fn cp_copies_within_the_store_and_into_another_store() {
    let (dir, store) = setup();
    ok(&store, &["cp", "a", "a2"]);
    assert_eq!(ok(&store, &["get", "a2"]), b"apple");
    assert_eq!(ok(&store, &["get", "a"]), b"apple");
    let other = dir.path().join("other.mmblob");
    let other_str = other.to_str().unwrap();
    ok(&store, &["cp", "b", "--to", other_str]);
    ok(&store, &["cp", "a", "fruit/a", "--to", other_str]);
    assert_eq!(ok(&other, &["get", "b"]), b"banana");
    assert_eq!(ok(&other, &["get", "fruit/a"]), b"apple");
    assert_eq!(code(&store, &["cp", "nope", "x"]).0, 3);
    assert_eq!(code(&store, &["cp", "a"]).0, 2, "nothing to do");
    assert_eq!(code(&store, &["cp", "a", "b", "-n"]).0, 1);
    assert_eq!(ok(&store, &["get", "b"]), b"banana");
    // --to naming the store itself is a copy within it.
    ok(&store, &["cp", "a", "a3", "--to", store.to_str().unwrap()]);
    assert_eq!(ok(&store, &["get", "a3"]), b"apple");
}

#[test]
fn info_reports_the_trailer_in_text_and_json() {
    let (_dir, store) = setup();
    let text = String::from_utf8(ok(&store, &["info", "b"])).unwrap();
    assert!(
        text.contains("checksum") && text.contains("key hash"),
        "{text}"
    );
    let json: Value = serde_json::from_slice(&ok(&store, &["--json", "info", "b"])).unwrap();
    assert_eq!(json["size"], 6);
    assert_eq!(json["key"], "b");
    assert_eq!(json["payload_offset"].as_u64().unwrap() % 64, 0);
    assert_eq!(
        json["payload_end"].as_u64().unwrap() - json["payload_offset"].as_u64().unwrap(),
        6
    );
    assert_eq!(json["tombstone"], false);
    assert_eq!(code(&store, &["info", "missing"]).0, 3);
}

#[test]
fn backup_reports_full_then_incremental_ranges_and_refuses_other_files() {
    let (dir, store) = setup();
    let dest = dir.path().join("b.mmblob");
    let dest_str = dest.to_str().unwrap();
    let first: Value =
        serde_json::from_slice(&ok(&store, &["--json", "backup", dest_str])).unwrap();
    assert_eq!(first["incremental"], false);
    assert_eq!(first["from"], 0);
    let size = std::fs::metadata(&store).unwrap().len();
    assert_eq!(first["to"], size);
    assert_eq!(first["entries"], 2);
    let file = dir.path().join("c.txt");
    std::fs::write(&file, b"cherry").unwrap();
    ok(&store, &["put", "c", file.to_str().unwrap()]);
    let second: Value =
        serde_json::from_slice(&ok(&store, &["--json", "backup", dest_str])).unwrap();
    assert_eq!(second["incremental"], true);
    assert_eq!(second["from"], first["to"]);
    assert_eq!(second["entries"], 1);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&store).unwrap()
    );
    let text = String::from_utf8(ok(&store, &["backup", dest_str])).unwrap();
    assert!(text.contains("incremental"), "{text}");

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, b"mine").unwrap();
    let (status, err) = code(&store, &["backup", notes.to_str().unwrap()]);
    assert_eq!(status, 6, "{err}");
    assert_eq!(std::fs::read(&notes).unwrap(), b"mine");
    let (status, err) = code(&store, &["backup", store.to_str().unwrap()]);
    assert_eq!(status, 1, "{err}");
    assert!(err.contains("same store"), "{err}");
}

fn put(store: &Path, dir: &Path, args: &[&str], value: &[u8]) {
    let file = dir.join("value.bin");
    std::fs::write(&file, value).unwrap();
    let mut all: Vec<&str> = args.to_vec();
    all.push(file.to_str().unwrap());
    ok(store, &all);
}

#[test]
fn ns_flag_keeps_every_key_command_inside_one_namespace() {
    let (dir, store) = setup();
    put(
        &store,
        dir.path(),
        &["put", "--ns", "users", "a"],
        b"user a",
    );
    put(
        &store,
        dir.path(),
        &["put", "--ns", "users", "b"],
        b"user b",
    );
    put(
        &store,
        dir.path(),
        &["put", "--ns", "groups", "a"],
        b"group a",
    );
    assert_eq!(ok(&store, &["get", "a"]), b"apple");
    assert_eq!(ok(&store, &["get", "--ns", "users", "a"]), b"user a");
    assert_eq!(ok(&store, &["get", "--ns", "groups", "a"]), b"group a");
    assert_eq!(code(&store, &["get", "--ns", "groups", "b"]).0, 3);

    // ls: plain keys only, or one namespace's keys, or the namespaces.
    assert_eq!(String::from_utf8(ok(&store, &["ls"])).unwrap(), "a\nb\n");
    assert_eq!(
        String::from_utf8(ok(&store, &["ls", "--ns", "users"])).unwrap(),
        "a\nb\n"
    );
    assert_eq!(
        String::from_utf8(ok(&store, &["ls", "--namespaces"])).unwrap(),
        "groups\nusers\n"
    );
    let names: Value =
        serde_json::from_slice(&ok(&store, &["--json", "ls", "--namespaces"])).unwrap();
    assert_eq!(names, serde_json::json!(["groups", "users"]));

    ok(&store, &["mv", "--ns", "users", "a", "c"]);
    ok(&store, &["cp", "--ns", "users", "c", "d"]);
    assert_eq!(ok(&store, &["get", "--ns", "users", "d"]), b"user a");
    assert_eq!(
        ok(&store, &["get", "a"]),
        b"apple",
        "the plain key is untouched"
    );
    let info: Value =
        serde_json::from_slice(&ok(&store, &["--json", "info", "--ns", "users", "d"])).unwrap();
    assert_eq!(info["size"], 6);

    ok(&store, &["del", "--ns", "users", "c"]);
    assert_eq!(code(&store, &["get", "--ns", "users", "c"]).0, 3);
    let (status, err) = code(&store, &["get", "--ns", "", "a"]);
    assert_eq!(status, 2, "{err}");
}

#[test]
fn del_prefix_deletes_every_matching_key_in_one_step() {
    let (dir, store) = setup();
    for key in ["logs/1", "logs/2", "logs/3", "keep"] {
        put(&store, dir.path(), &["put", key], key.as_bytes());
    }
    put(&store, dir.path(), &["put", "--ns", "n", "logs/1"], b"ns");
    let json: Value =
        serde_json::from_slice(&ok(&store, &["--json", "del", "--prefix", "logs/"])).unwrap();
    assert_eq!(json["deleted"], 3);
    assert_eq!(
        String::from_utf8(ok(&store, &["ls"])).unwrap(),
        "a\nb\nkeep\n"
    );
    assert_eq!(ok(&store, &["get", "--ns", "n", "logs/1"]), b"ns");
    ok(&store, &["del", "--ns", "n", "--prefix", "logs"]);
    assert_eq!(code(&store, &["get", "--ns", "n", "logs/1"]).0, 3);
    // Nothing under the prefix: nothing to do, not an error.
    ok(&store, &["del", "--prefix", "nothing/"]);
    assert_eq!(code(&store, &["del"]).0, 2, "keys or --prefix are required");
}
