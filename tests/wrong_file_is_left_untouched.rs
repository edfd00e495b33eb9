//! Opening something that is not an mmblob store is a typed error, and the
//! file is left exactly as it was: same bytes, same modification time.
//! Checked for every way of opening: writable, read-only, strict, existing.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use mmblob::format::{FORMAT_VERSION, HEADER_LEN, Header, MAGIC};
use mmblob::{DataStore, Error, OpenOptions};

/// Every way to open a path.
fn open_all_ways(path: &Path) -> Vec<(&'static str, mmblob::Result<DataStore>)> {
    vec![
        ("open", DataStore::open(path)),
        ("open_existing", DataStore::open_existing(path)),
        ("read_only", OpenOptions::new().read_only(true).open(path)),
        ("strict", OpenOptions::new().strict(true).open(path)),
    ]
}

/// The bytes and modification time of a file.
fn fingerprint(path: &Path) -> (Vec<u8>, SystemTime) {
    let bytes = std::fs::read(path).expect("read the file");
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("modification time");
    (bytes, mtime)
}

/// Writes `bytes` to a file with an old modification time (so a rewrite,
/// even of the same bytes, would show), opens it every way, and checks each
/// error with `expected` and that the file did not change.
fn assert_rejected_untouched(bytes: &[u8], expected: impl Fn(&Error) -> bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("not-a-store.bin");
    std::fs::write(&path, bytes).expect("write the file");
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(old))
        .expect("set mtime");
    let before = fingerprint(&path);
    for (how, result) in open_all_ways(&path) {
        match result {
            Ok(_) => panic!("{how}: opened a file that is not a store"),
            Err(err) => {
                assert!(expected(&err), "{how}: unexpected error {err:?}");
                let message = err.to_string();
                assert!(
                    message.contains(&*path.to_string_lossy())
                        || matches!(err, Error::Corrupt { .. }),
                    "{how}: the message names the file: {message}"
                );
            }
        }
        assert!(fingerprint(&path) == before, "{how}: the file was changed");
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 1, "nothing was created next to it: {names:?}");
}

fn not_a_store(err: &Error) -> bool {
    matches!(err, Error::NotAStore { .. }) && err.kind() == std::io::ErrorKind::InvalidData
}

/// A header with the given version and alignment and a correct checksum.
fn header_with(version: u32, alignment: u32) -> Vec<u8> {
    let mut header = Header { store_id: 42 }.encode().to_vec();
    header[8..12].copy_from_slice(&version.to_le_bytes());
    header[12..16].copy_from_slice(&alignment.to_le_bytes());
    let crc = crc32(&header[..60]);
    header[60..64].copy_from_slice(&crc.to_le_bytes());
    header
}

/// CRC-32 (IEEE), as the header uses; written out so the test does not
/// trust the code under test to compute it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_text_file_is_not_a_store() {
    let text = "name,value\nalpha,1\nbeta,2\n".repeat(200);
    assert_rejected_untouched(text.as_bytes(), not_a_store);
}

#[test]
fn random_bytes_are_not_a_store() {
    let mut x = 0x1234_5678_9abc_def0u64;
    let bytes: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    assert_rejected_untouched(&bytes, not_a_store);
}

#[test]
fn files_shorter_than_a_header_are_not_stores() {
    assert_rejected_untouched(b"hello", not_a_store);
    assert_rejected_untouched(&MAGIC[..5], not_a_store);
    let header = Header { store_id: 7 }.encode();
    assert_rejected_untouched(&header[..HEADER_LEN as usize - 1], not_a_store);
}

#[test]
fn an_unknown_format_version_is_refused_by_number() {
    assert_eq!(
        header_with(FORMAT_VERSION, 64),
        Header { store_id: 42 }.encode()
    );
    let mut file = header_with(2, 64);
    file.extend_from_slice(&[0xab; 500]);
    assert_rejected_untouched(&file, |err| {
        matches!(
            err,
            Error::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        )
    });
}

#[test]
fn a_header_with_another_alignment_is_not_a_store() {
    assert_rejected_untouched(&header_with(1, 4096), not_a_store);
}

#[test]
fn a_directory_is_not_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sub = dir.path().join("store.mmblob");
    std::fs::create_dir(&sub).expect("mkdir");
    for (how, result) in open_all_ways(&sub) {
        match result {
            Err(Error::NotAFile { path }) => assert_eq!(path, sub, "{how}"),
            other => panic!("{how}: {other:?}"),
        }
    }
    assert_eq!(std::fs::read_dir(&sub).expect("list").count(), 0);
}

#[test]
fn a_fifo_is_not_a_file_and_open_does_not_block_on_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(status.success());
    // Opening a FIFO for reading blocks until a writer comes: run the opens
    // on a thread and treat a long wait as the failure it would be.
    let (done, finished) = mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let outcomes: Vec<String> = open_all_ways(&path)
            .into_iter()
            .map(|(how, r)| match r {
                Err(Error::NotAFile { .. }) => String::new(),
                other => format!("{how}: {other:?}"),
            })
            .collect();
        let _ = done.send(outcomes);
    });
    let outcomes = finished
        .recv_timeout(Duration::from_secs(10))
        .expect("opening a FIFO blocked");
    assert!(outcomes.iter().all(String::is_empty), "{outcomes:?}");
}

#[test]
fn a_missing_file_is_not_created_unless_asked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("missing.mmblob");
    for result in [
        DataStore::open_existing(&path),
        OpenOptions::new().read_only(true).open(&path),
        OpenOptions::new().create(false).open(&path),
    ] {
        assert!(
            matches!(result, Err(Error::StoreNotFound { .. })),
            "{result:?}"
        );
        assert!(!path.exists(), "a refused open created the file");
    }
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
}
