//! Damage reported through the binary: `verify` and `stat` name the damaged
//! keys and offsets and the ignored bytes, `verify` exits 4 when it finds
//! either, `get` of a damaged key says "damaged" and exits 4, and the
//! guidance printed can be followed: `mmblob salvage SRC DEST` writes every
//! intact entry into a new store, also when the header is damaged.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mmblob::DataStore;
use serde_json::Value;

fn mmblob(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmblob"))
        .args(args)
        .env_remove("MMBLOB_STORE")
        .env_remove("RUST_LOG")
        .output()
        .expect("run mmblob")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Twenty files, then a batch of five (like an import) whose last value has
/// a flipped byte.
fn damaged_store(dir: &Path) -> PathBuf {
    let path = dir.join("store.mmblob");
    let store = DataStore::open(&path).expect("create");
    for i in 0..20u8 {
        store
            .write(format!("file-{i:02}").as_bytes(), &[i; 500])
            .expect("write");
    }
    let values: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 300]).collect();
    let keys: Vec<String> = (0..5).map(|i| format!("import/{i}")).collect();
    let batch: Vec<(&[u8], &[u8])> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| (k.as_bytes(), v.as_slice()))
        .collect();
    store.batch_write(&batch).expect("batch");
    drop(store);
    let mut bytes = std::fs::read(&path).expect("read");
    let at = bytes.len() - 32 - "import/4".len() - 100;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).expect("damage");
    path
}

#[test]
fn verify_stat_and_get_name_the_damaged_keys_and_point_at_salvage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = damaged_store(dir.path());
    let before = std::fs::read(&store).expect("read");

    let verify = mmblob(&["--store", s(&store), "verify"]);
    assert_eq!(verify.status.code(), Some(4), "{}", text(&verify.stderr));
    let out = text(&verify.stdout);
    assert!(out.contains("damaged: bytes"), "{out}");
    assert!(out.contains("import/4"), "the damaged key is named: {out}");
    assert!(
        out.contains("import/0"),
        "the hidden batch keys are named: {out}"
    );
    let err = text(&verify.stderr);
    assert!(err.contains("`import/4`"), "{err}");
    assert!(
        err.contains(&format!("mmblob salvage {}", s(&store))),
        "{err}"
    );

    let json = mmblob(&["--store", s(&store), "--json", "verify"]);
    assert_eq!(json.status.code(), Some(4));
    let report: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(report["ok"], false);
    let damaged = report["damaged"].as_array().expect("array");
    assert!(
        damaged
            .iter()
            .any(|d| d["key"] == "import/4" && d["kind"] == "checksum")
    );
    assert!(damaged.iter().any(|d| d["kind"] == "incomplete_batch"));
    let keys: Vec<&str> = report["damaged_keys"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|k| k["key"].as_str())
        .collect();
    assert_eq!(
        keys,
        ["import/0", "import/1", "import/2", "import/3", "import/4"]
    );

    let stat = mmblob(&["--store", s(&store), "stat"]);
    assert!(stat.status.success(), "{}", text(&stat.stderr));
    let out = text(&stat.stdout);
    assert!(
        out.contains("damaged: bytes") && out.contains("import/4"),
        "{out}"
    );
    assert!(out.contains("mmblob salvage"), "{out}");
    let stat: Value =
        serde_json::from_slice(&mmblob(&["--store", s(&store), "--json", "stat"]).stdout)
            .expect("JSON");
    assert!(stat["damage"].as_u64().expect("count") >= 1);
    assert_eq!(stat["damaged_keys"].as_array().expect("array").len(), 5);

    for key in ["import/4", "import/1"] {
        let get = mmblob(&["--store", s(&store), "get", key]);
        assert_eq!(get.status.code(), Some(4), "get {key}");
        let err = text(&get.stderr);
        assert!(err.contains("damaged") && err.contains(key), "{err}");
        assert!(!err.contains("not found"), "{err}");
        assert!(get.stdout.is_empty());
    }
    assert_eq!(
        mmblob(&["--store", s(&store), "get", "file-03"]).stdout,
        vec![3u8; 500],
        "other entries stay readable"
    );
    assert!(
        std::fs::read(&store).expect("read") == before,
        "read-only commands changed the store"
    );

    // Following the guidance: salvage, then the new store verifies clean.
    let rescued = dir.path().join("rescued.mmblob");
    let salvage = mmblob(&["salvage", s(&store), s(&rescued)]);
    assert!(salvage.status.success(), "{}", text(&salvage.stderr));
    let out = text(&salvage.stdout);
    assert!(
        out.contains("left behind") && out.contains("import/4"),
        "{out}"
    );
    assert!(out.contains("copied 20 entries"), "{out}");
    assert!(mmblob(&["--store", s(&rescued), "verify"]).status.success());
    let listed = text(&mmblob(&["--store", s(&rescued), "ls"]).stdout);
    assert_eq!(listed.lines().count(), 20, "{listed}");
    assert!(
        std::fs::read(&store).expect("read") == before,
        "salvage changed its source"
    );
}

#[test]
fn salvage_json_and_refusals() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = damaged_store(dir.path());
    let rescued = dir.path().join("rescued.mmblob");
    let json = mmblob(&["--json", "salvage", s(&store), s(&rescued)]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let report: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(report["complete"], false);
    assert_eq!(report["entries_copied"], 20);
    assert_eq!(report["keys_lost"][0], "import/4");
    assert!(!report["left_behind"].as_array().expect("array").is_empty());

    // Never onto anything that exists, nor onto the store itself.
    let again = mmblob(&["salvage", s(&store), s(&rescued)]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("not empty"),
        "{}",
        text(&again.stderr)
    );
    let same = mmblob(&["salvage", s(&store), s(&store)]);
    assert_eq!(same.status.code(), Some(2), "{}", text(&same.stderr));
    let missing = mmblob(&[
        "salvage",
        s(&dir.path().join("nope")),
        s(&dir.path().join("x")),
    ]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing.stderr));
    assert!(!dir.path().join("x").exists());
}

#[test]
fn a_store_with_a_damaged_header_can_be_salvaged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("store.mmblob");
    {
        let db = DataStore::open(&store).expect("create");
        for i in 0..10u8 {
            db.write(&[b'k', b'0' + i], &[i; 99]).expect("write");
        }
    }
    let mut bytes = std::fs::read(&store).expect("read");
    bytes[20] ^= 0x40; // a bit of the store id
    std::fs::write(&store, &bytes).expect("damage");
    let verify = mmblob(&["--store", s(&store), "verify"]);
    assert_eq!(verify.status.code(), Some(4));
    assert!(
        text(&verify.stderr).contains("mmblob salvage"),
        "{}",
        text(&verify.stderr)
    );
    let rescued = dir.path().join("rescued.mmblob");
    let salvage = mmblob(&["salvage", s(&store), s(&rescued)]);
    assert!(salvage.status.success(), "{}", text(&salvage.stderr));
    assert!(
        text(&salvage.stdout).contains("header"),
        "{}",
        text(&salvage.stdout)
    );
    assert_eq!(
        text(&mmblob(&["--store", s(&rescued), "ls"]).stdout)
            .lines()
            .count(),
        10
    );
}

#[test]
fn torn_and_truncated_bytes_make_verify_exit_4_without_changing_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = dir.path().join("store.mmblob");
    {
        let db = DataStore::open(&store).expect("create");
        for i in 0..3000u32 {
            db.write(format!("key-{i}").as_bytes(), &[7; 200])
                .expect("write");
        }
    }
    // Torn bytes after the last entry.
    let clean = std::fs::read(&store).expect("read");
    let mut torn = clean.clone();
    torn.extend_from_slice(&[0x33; 77]);
    std::fs::write(&store, &torn).expect("write");
    let verify = mmblob(&["--store", s(&store), "verify"]);
    assert_eq!(verify.status.code(), Some(4), "{}", text(&verify.stderr));
    assert!(
        text(&verify.stdout).contains("ignored: bytes"),
        "{}",
        text(&verify.stdout)
    );
    assert!(
        text(&verify.stderr).contains("77 B"),
        "{}",
        text(&verify.stderr)
    );
    let stat: Value =
        serde_json::from_slice(&mmblob(&["--store", s(&store), "--json", "stat"]).stdout)
            .expect("JSON");
    assert_eq!(stat["torn_bytes"], 77);
    assert!(
        std::fs::read(&store).expect("read") == torn,
        "a read-only command cut the file"
    );

    // Truncated to half after a clean close.
    std::fs::write(&store, &clean[..clean.len() / 2]).expect("truncate");
    let verify = mmblob(&["--store", s(&store), "verify"]);
    assert_eq!(verify.status.code(), Some(4));
    let out = text(&verify.stdout);
    assert!(
        out.contains("the file ends at") && out.contains(&format!("reached {}", clean.len())),
        "{out}"
    );
    let stat = text(&mmblob(&["--store", s(&store), "stat"]).stdout);
    assert!(stat.contains("the file ends at"), "{stat}");
}
