//! Every key `mmblob ls` prints can be given back to `get`, `del`, `put`
//! and `--prefix`: keys that are not printable text are shown as `0x` and
//! hex digits, and such an argument names the key with those bytes. A key
//! whose own text reads as `0x` and hex digits is shown in hex too, and
//! `--raw-keys` takes arguments as they are.

// The tests run the `mmblob` binary, which is built with the `cli` feature.
#![cfg(feature = "cli")]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::{Command, Output};

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

    fn run(&self, args: &[&OsStr]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mmblob"))
            .current_dir(self.dir.path())
            .arg("--store")
            .arg(&self.store)
            .args(args)
            .env_remove("MMBLOB_STORE")
            .env_remove("RUST_LOG")
            .output()
            .expect("run mmblob")
    }

    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let output = self.run(&args);
        assert!(
            output.status.success(),
            "mmblob {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    fn ls(&self) -> Vec<String> {
        String::from_utf8(self.ok(&["ls"]))
            .expect("UTF-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn keys_listed_in_hex_are_accepted_back() {
    let cli = Cli::new();
    // A file whose name is not UTF-8 becomes a key `ls` can only show in hex.
    let tree = cli.dir.path().join("tree");
    std::fs::create_dir(&tree).expect("mkdir");
    std::fs::write(
        tree.join(OsStr::from_bytes(b"caf\xe9.txt")),
        b"latin-1 name",
    )
    .expect("write");
    std::fs::write(tree.join("plain.txt"), b"plain").expect("write");
    cli.ok(&["import", "tree"]);
    let listed = cli.ls();
    assert_eq!(listed, ["0x636166e92e747874", "plain.txt"]);

    assert_eq!(cli.ok(&["get", &listed[0]]), b"latin-1 name");
    assert_eq!(
        cli.ok(&["ls", "--prefix", "0x636166"]),
        b"0x636166e92e747874\n"
    );
    cli.ok(&["get", &listed[0], "-o", "copy"]);
    assert_eq!(
        std::fs::read(cli.dir.path().join("copy")).expect("copy"),
        b"latin-1 name"
    );
    cli.ok(&["del", &listed[0]]);
    assert_eq!(cli.ls(), ["plain.txt"]);

    // put takes hex too: a key with a newline and a zero byte.
    let value = cli.dir.path().join("value");
    std::fs::write(&value, b"v").expect("write");
    cli.ok(&["put", "0x610a00", value.to_str().expect("UTF-8")]);
    assert_eq!(cli.ls(), ["0x610a00", "plain.txt"]);
    assert_eq!(
        cli.ok(&["get", "0x610A00"]),
        b"v",
        "upper-case hex digits work"
    );
}

#[test]
fn a_literal_key_that_looks_like_hex_is_shown_in_hex_and_reachable_both_ways() {
    let cli = Cli::new();
    let value = cli.dir.path().join("value");
    std::fs::write(&value, b"literal").expect("write");
    let value = value.to_str().expect("UTF-8");
    cli.ok(&["put", "--raw-keys", "0xab", value]);
    // `0x` + hex digits would name the byte 0xab, so ls spells the key out.
    assert_eq!(cli.ls(), ["0x30786162"]);
    assert_eq!(cli.ok(&["get", "0x30786162"]), b"literal");
    assert_eq!(cli.ok(&["get", "--raw-keys", "0xab"]), b"literal");
    let missing = cli.run(&[OsStr::new("get"), OsStr::new("0xab")]);
    assert_eq!(missing.status.code(), Some(3), "0xab is the byte 0xab");

    // Text that is not `0x` + an even number of hex digits is a plain key.
    for plain in ["0x", "0xabc", "0xzz", "ab"] {
        cli.ok(&["put", plain, value]);
        assert_eq!(cli.ok(&["get", plain]), b"literal");
    }
    assert_eq!(cli.ls(), ["0x", "0x30786162", "0xabc", "0xzz", "ab"]);
    cli.ok(&["del", "--raw-keys", "0xab", "0xzz"]);
    assert_eq!(cli.ls(), ["0x", "0xabc", "ab"]);
}
