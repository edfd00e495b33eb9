//! A write that runs out of space fails cleanly.
//!
//! A child process lowers its `RLIMIT_FSIZE` to a little above the store
//! file's size (and ignores `SIGXFSZ`, so an over-long write fails with
//! `EFBIG` instead of killing it), then writes until a write fails, for
//! `write`, `batch_write` and `write_stream` in turn. The writer keeps space
//! reserved after its last entry (zeros, allocated ahead with `fallocate`),
//! so writes succeed until both that reservation and the room under the
//! limit are used up. The failing call returns `Error::Io`, leaves the file
//! as long as it was with nothing but zeros after the previous entry (no
//! partial entry), the tail does not move, earlier values still read back,
//! and once the limit is raised the next write succeeds. A compaction
//! without room for its new file fails the same way and changes nothing.
//! The parent then reopens the store (the clean close trimmed the
//! reservation) and finds every acknowledged entry and no failed one.

mod support;

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::Path;

use mmblob::{DataStore, Error};
use support::child;
use support::limits::limit_file_size;

fn value(key: &str, len: usize) -> Vec<u8> {
    let seed = key
        .bytes()
        .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    (0..len)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect()
}

/// Value lengths per key: the batch mixes a value written from the
/// caller's memory (above the 16 KiB copy threshold) with small ones.
fn value_len(key: &str) -> usize {
    match key.rsplit_once('.').map(|(_, m)| m) {
        Some("big") => 20_000,
        _ if key.starts_with("stream") => 3_000,
        _ => 1_500,
    }
}

/// One kind of write; returns the keys it stores.
fn attempt(store: &DataStore, api: &str, n: usize) -> (Vec<String>, mmblob::Result<u64>) {
    match api {
        "write" => {
            let key = format!("write-{n}");
            let result = store.write(key.as_bytes(), &value(&key, value_len(&key)));
            (vec![key], result)
        }
        "batch" => {
            let keys: Vec<String> = ["a", "big", "c"]
                .iter()
                .map(|m| format!("batch-{n}.{m}"))
                .collect();
            let values: Vec<Vec<u8>> = keys.iter().map(|k| value(k, value_len(k))).collect();
            let entries: Vec<(&[u8], &[u8])> = keys
                .iter()
                .zip(&values)
                .map(|(k, v)| (k.as_bytes(), v.as_slice()))
                .collect();
            let result = store.batch_write(&entries);
            (keys, result)
        }
        _ => {
            let key = format!("stream-{n}");
            let data = value(&key, value_len(&key));
            let result = store.write_stream(key.as_bytes(), &mut Cursor::new(data));
            (vec![key], result)
        }
    }
}

/// Asserts that the store file holds only zeros from `tail` to its end:
/// reserved space, no partial entry.
fn assert_only_zeros_after(path: &Path, tail: u64, what: &str) {
    let bytes = std::fs::read(path).expect("read the store file");
    let after = &bytes[usize::try_from(tail).expect("small file")..];
    assert!(
        after.iter().all(|&b| b == 0),
        "{what}: a partial entry was left after the tail {tail}"
    );
}

fn assert_all_read_back(store: &DataStore, keys: &BTreeSet<String>, absent: &BTreeSet<String>) {
    for key in keys {
        let entry = store
            .read(key.as_bytes())
            .expect("read")
            .unwrap_or_else(|| panic!("{key} is lost"));
        assert!(*entry == *value(key, value_len(key)), "{key} changed");
    }
    for key in absent {
        assert!(
            !store.exists(key.as_bytes()).expect("exists"),
            "failed {key} is visible"
        );
    }
}

#[test]
fn child_writes_until_the_disk_is_full() {
    if child::role().as_deref() != Some("disk-full") {
        return;
    }
    // SAFETY: ignoring SIGXFSZ installs no handler; a write past the limit
    // then fails with EFBIG instead of killing the process.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let path = child::store_path();
    let store = DataStore::open(&path).expect("open");
    let file_len = |p: &Path| std::fs::metadata(p).expect("metadata").len();
    let mut acked = BTreeSet::new();
    let mut failed = BTreeSet::new();
    let mut n = 0;
    for api in ["write", "batch", "stream"] {
        let (keys, result) = attempt(&store, api, n);
        n += 1;
        result.expect("a write with room succeeds");
        acked.extend(keys.iter().cloned());
        keys.iter().for_each(|k| child::say(&format!("ack {k}")));

        let mut tail = store.file_size().expect("size");
        limit_file_size(Some(file_len(&path) + 30_000));
        let mut successes = 0;
        loop {
            let len_before = file_len(&path);
            let (keys, result) = attempt(&store, api, n);
            n += 1;
            match result {
                Ok(end) => {
                    assert_eq!(
                        end,
                        store.file_size().expect("size"),
                        "{api}: end offset is the logical end"
                    );
                    assert!(end <= file_len(&path), "{api}: {end} past the file's end");
                    tail = end;
                    successes += 1;
                    acked.extend(keys.iter().cloned());
                    keys.iter().for_each(|k| child::say(&format!("ack {k}")));
                }
                Err(Error::Io { source, .. }) => {
                    assert_eq!(source.raw_os_error(), Some(libc::EFBIG), "{api}: {source}");
                    assert!(file_len(&path) <= len_before, "{api}: the file grew");
                    assert_only_zeros_after(&path, tail, api);
                    assert_eq!(store.file_size().expect("size"), tail, "{api}: tail moved");
                    failed.extend(keys.iter().cloned());
                    keys.iter().for_each(|k| child::say(&format!("fail {k}")));
                    break;
                }
                Err(other) => panic!("{api}: unexpected error {other:?}"),
            }
        }
        assert!(successes >= 1, "{api}: the limit left no room at all");
        assert_all_read_back(&store, &acked, &failed);

        // With no room at all past the file's end (and too little left in
        // the reservation, as the failure showed), it fails again; still
        // nothing moves.
        let len = file_len(&path);
        limit_file_size(Some(len));
        let (keys, result) = attempt(&store, api, n);
        n += 1;
        assert!(matches!(result, Err(Error::Io { .. })), "{api}: {result:?}");
        assert_eq!(
            file_len(&path),
            len,
            "{api}: write at the limit grew the file"
        );
        assert_only_zeros_after(&path, tail, api);
        assert_eq!(store.file_size().expect("size"), tail, "{api}: tail moved");
        failed.extend(keys);

        // Space returns: the next write succeeds and lands right at the tail.
        limit_file_size(None);
        let (keys, result) = attempt(&store, api, n);
        n += 1;
        let end = result.expect("a write after space returned succeeds");
        assert!(
            end > tail && end == store.file_size().expect("size") && end <= file_len(&path),
            "{api}: {end} after {tail}"
        );
        acked.extend(keys.iter().cloned());
        keys.iter().for_each(|k| child::say(&format!("ack {k}")));
        assert_all_read_back(&store, &acked, &failed);
    }

    // Compaction needs room for a whole new file. Without it, it fails,
    // leaves no temporary file behind and changes nothing in the store.
    let tail = store.file_size().expect("size");
    let len = file_len(&path);
    limit_file_size(Some(tail / 2));
    match store.compact() {
        Err(Error::Io { source, .. }) => {
            assert_eq!(
                source.raw_os_error(),
                Some(libc::EFBIG),
                "compact: {source}"
            )
        }
        other => panic!("compaction without room: {other:?}"),
    }
    limit_file_size(None);
    assert_eq!(
        file_len(&path),
        len,
        "a failed compaction changed the store"
    );
    assert_eq!(store.file_size().expect("size"), tail);
    let dir = path.parent().expect("store directory");
    for entry in std::fs::read_dir(dir).expect("list") {
        let name = entry.expect("entry").file_name();
        assert!(
            !name.to_string_lossy().contains("compacting"),
            "a failed compaction left {name:?}"
        );
    }
    assert_all_read_back(&store, &acked, &failed);
    let stats = store.compact().expect("compaction with room");
    assert!(stats.bytes_after <= stats.bytes_before);
    assert_all_read_back(&store, &acked, &failed);
    let (keys, result) = attempt(&store, "write", n);
    result.expect("a write after compaction");
    keys.iter().for_each(|k| child::say(&format!("ack {k}")));
    child::say("done");
}

#[test]
fn disk_full_leaves_no_partial_entry() {
    if child::role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("full.mmblob");
    let events =
        child::spawn("child_writes_until_the_disk_is_full", "disk-full", &path, 0).wait_success();
    assert_eq!(events.last().map(String::as_str), Some("done"));
    let mut acked = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for event in &events {
        if let Some(key) = event.strip_prefix("ack ") {
            acked.insert(key.to_owned());
        } else if let Some(key) = event.strip_prefix("fail ") {
            failed.insert(key.to_owned());
        }
    }
    for api in ["write", "batch", "stream"] {
        assert!(
            failed.iter().any(|k| k.starts_with(api)),
            "{api} never failed"
        );
    }

    let len = std::fs::metadata(&path).expect("metadata").len();
    let store = DataStore::open_existing(&path).expect("reopen");
    assert_eq!(
        store.file_size().expect("size"),
        len,
        "the clean close trimmed the reserved space"
    );
    assert!(store.damage().is_empty(), "{:?}", store.damage());
    assert_all_read_back(&store, &acked, &BTreeSet::new());
    for key in &failed {
        assert!(
            !store.exists(key.as_bytes()).expect("exists"),
            "failed {key} is there"
        );
    }
    assert_eq!(store.len(), acked.len());
    assert!(store.verify().expect("verify").is_ok());
}
