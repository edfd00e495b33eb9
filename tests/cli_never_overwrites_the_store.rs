//! The `mmblob` binary never turns the store against itself: `get -o`,
//! `export` and `put` refuse the store file and its index sidecar as output
//! or input, by device and inode (the path as given, `./store`, a hard
//! link, a symlink), and leave the store byte-for-byte as it was; `get -o`
//! and `export` write through a temporary file renamed into place, so a
//! failure mid-way leaves an existing file intact.

// The tests run the `mmblob` binary, which is built with the `cli` feature.
#![cfg(feature = "cli")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

struct Cli {
    dir: tempfile::TempDir,
    store: PathBuf,
}

impl Cli {
    /// A store with a few small values and one of 4 MiB.
    fn with_values() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("test.mmblob");
        let cli = Cli { dir, store };
        cli.put_bytes("small", b"hello");
        cli.put_bytes("big", &pattern(4 << 20));
        cli
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mmblob"));
        command
            .current_dir(self.dir.path())
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

    fn put_bytes(&self, key: &str, value: &[u8]) {
        let file = self.path("input.tmp");
        std::fs::write(&file, value).expect("write input");
        let output = self.run(&["put", key, file.to_str().expect("UTF-8")]);
        assert!(output.status.success(), "{}", stderr(&output));
        std::fs::remove_file(file).expect("remove input");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn store_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.store).expect("read store")
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 4096) as u8).collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_refused(output: &Output, needle: &str) {
    assert_eq!(
        output.status.code(),
        Some(2),
        "expected a usage error: {}",
        stderr(output)
    );
    let message = stderr(output);
    assert!(message.contains(needle), "{message}");
    assert!(message.contains("refusing"), "{message}");
}

#[test]
fn get_refuses_every_name_of_the_store_as_output() {
    let cli = Cli::with_values();
    std::fs::hard_link(&cli.store, cli.path("hard-link")).expect("hard link");
    std::os::unix::fs::symlink(&cli.store, cli.path("sym-link")).expect("symlink");
    let before = cli.store_bytes();
    let names = [
        cli.store.to_str().expect("UTF-8").to_owned(),
        "./test.mmblob".to_owned(),
        "test.mmblob".to_owned(),
        "hard-link".to_owned(),
        "sym-link".to_owned(),
        format!("{}/../{}/test.mmblob", cli.dir.path().display(), {
            cli.dir
                .path()
                .file_name()
                .expect("name")
                .to_str()
                .expect("UTF-8")
        }),
    ];
    for name in &names {
        for key in ["small", "big"] {
            let output = cli.run(&["get", key, "-o", name]);
            assert_refused(&output, "the store file");
            assert_eq!(
                cli.store_bytes(),
                before,
                "get {key} -o {name} changed the store"
            );
        }
    }
    let listed = cli.run(&["ls"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "big\nsmall\n");
}

#[test]
fn get_refuses_the_index_sidecar_as_output() {
    let cli = Cli::with_values();
    // A store of 10,000+ keys leaves an index sidecar beside it on close.
    {
        let db = mmblob::DataStore::open(&cli.store).expect("open");
        let keys: Vec<String> = (0..10_000).map(|i| format!("k{i}")).collect();
        let entries: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_bytes(), &b"v"[..])).collect();
        db.batch_write(&entries).expect("batch");
    }
    let sidecar = cli.path("test.mmblob.index");
    assert!(sidecar.exists(), "a large store leaves a sidecar");
    let before = std::fs::read(&sidecar).expect("read sidecar");
    let output = cli.run(&["get", "small", "-o", sidecar.to_str().expect("UTF-8")]);
    assert_refused(&output, "index sidecar");
    assert_eq!(std::fs::read(&sidecar).expect("read sidecar"), before);
}

#[test]
fn get_to_a_file_replaces_it_whole_or_not_at_all() {
    let cli = Cli::with_values();
    let out = cli.path("out.bin");
    std::fs::write(&out, b"precious").expect("write");
    // With a 1 MiB file size limit the 4 MiB value cannot be written: the
    // existing file must survive untouched, and no temporary file remain.
    let output = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 1024; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_mmblob"))
        .args(["--store", cli.store.to_str().expect("UTF-8")])
        .args(["get", "big", "-o", out.to_str().expect("UTF-8")])
        .env_remove("MMBLOB_STORE")
        .stdin(Stdio::null())
        .output()
        .expect("run mmblob under a file size limit");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot write"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(&out).expect("read"), b"precious");
    let names = dir_names(cli.dir.path());
    // The store's index sidecar is a cache the store keeps beside itself.
    assert_eq!(
        names,
        ["out.bin", "test.mmblob", "test.mmblob.index"],
        "leftovers: {names:?}"
    );

    // Without the limit the file is replaced, keeping its permissions.
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o640))
        .expect("chmod");
    let output = cli.run(&["get", "big", "-o", "out.bin"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(&out).expect("read"), pattern(4 << 20));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&out).expect("stat").permissions(),
    );
    assert_eq!(mode & 0o777, 0o640);
    assert_eq!(
        dir_names(cli.dir.path()),
        ["out.bin", "test.mmblob", "test.mmblob.index"]
    );
}

#[test]
fn get_to_a_device_or_a_pipe_writes_into_it_and_leaves_it_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let cli = Cli::with_values();
    let output = cli.run(&["get", "big", "-o", "/dev/null"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let null = std::fs::metadata("/dev/null").expect("/dev/null");
    assert!(null.file_type().is_char_device(), "/dev/null was replaced");
    // A FIFO stays a FIFO and carries the value.
    let fifo = cli.path("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).expect("read fifo"))
    };
    let output = cli.run(&["get", "small", "-o", "fifo"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(reader.join().expect("reader"), b"hello");
    let meta = std::fs::symlink_metadata(&fifo).expect("fifo");
    assert!(meta.file_type().is_fifo(), "the FIFO was replaced");
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn export_skips_a_key_whose_file_would_be_the_store_and_says_so() {
    let cli = Cli::with_values();
    // A key named like the store, exported into the store's own directory.
    cli.put_bytes("test.mmblob", b"not a store");
    // And a hard link to the store under another key's name.
    cli.put_bytes("linked", b"also not a store");
    std::fs::hard_link(&cli.store, cli.path("linked")).expect("hard link");
    let before = cli.store_bytes();
    let output = cli.run(&["--json", "export", "."]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(cli.store_bytes(), before, "export wrote over the store");
    let message = stderr(&output);
    assert!(
        message.contains("refused key test.mmblob") && message.contains("refused key linked"),
        "{message}"
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["exported"], 2, "{report}");
    let mut skipped: Vec<(String, String)> = report["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|s| {
            let field = |f: &str| s[f].as_str().expect(f).to_owned();
            (field("key"), field("reason"))
        })
        .collect();
    skipped.sort();
    assert_eq!(
        skipped,
        [
            ("linked".to_owned(), "store_file".to_owned()),
            ("test.mmblob".to_owned(), "store_file".to_owned())
        ]
    );
    assert_eq!(
        std::fs::read(cli.path("small")).expect("exported small"),
        b"hello"
    );
    assert_eq!(
        std::fs::read(cli.path("big")).expect("exported big"),
        pattern(4 << 20)
    );
    // The store still opens with every key.
    let listed = cli.run(&["ls"]);
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "big\nlinked\nsmall\ntest.mmblob\n"
    );
}

#[test]
fn put_refuses_the_store_as_its_source_by_any_name_and_on_stdin() {
    let cli = Cli::with_values();
    std::fs::hard_link(&cli.store, cli.path("hard-link")).expect("hard link");
    std::os::unix::fs::symlink(&cli.store, cli.path("sym-link")).expect("symlink");
    let before = cli.store_bytes();
    for name in ["test.mmblob", "./test.mmblob", "hard-link", "sym-link"] {
        let output = cli.run(&["put", "copy", name]);
        assert_refused(&output, "the store file");
        assert_eq!(
            cli.store_bytes(),
            before,
            "put copy {name} changed the store"
        );
    }
    for name in ["test.mmblob", "sym-link"] {
        let stdin = std::fs::File::open(cli.path(name)).expect("open store");
        let output = cli
            .command(&["put", "copy"])
            .stdin(stdin)
            .output()
            .expect("run mmblob");
        assert_refused(&output, "standard input");
        assert_eq!(
            cli.store_bytes(),
            before,
            "put copy < {name} changed the store"
        );
    }
    // An ordinary copy of the store is an ordinary value.
    std::fs::copy(&cli.store, cli.path("a-copy")).expect("copy");
    let output = cli.run(&["put", "copy", "a-copy"]);
    assert!(output.status.success(), "{}", stderr(&output));
}
