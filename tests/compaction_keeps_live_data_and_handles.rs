//! Online compaction drops dead entries and keeps everything else: every
//! live value, every handle taken before, reads in other threads while it
//! runs, and writes made while it runs. `stats()` and `CompactStats` give
//! exact numbers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mmblob::{DataStore, EntryHandle, Error, OpenOptions, StoreStats};

/// What each key holds after the writes that returned (None: deleted).
type Acked = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

const HEADER_LEN: u64 = 64;
const TRAILER_LEN: u64 = 32;

fn temp_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    (dir, path)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}

/// The store's logical length (the end of its last entry) as an
/// independent read-only handle finds it. While a writer is open the file
/// itself may be longer: space reserved for the next writes.
fn logical_len(path: &Path) -> u64 {
    OpenOptions::new()
        .read_only(true)
        .open(path)
        .expect("read-only open")
        .file_size()
        .expect("size")
}

/// A value that names its key and version, so a reader can check it alone:
/// `version (8 bytes LE) | key length (2 bytes LE) | key | filler`.
fn value_for(key: &[u8], version: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len.max(10 + key.len()));
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
    let mut x = version.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ key.len() as u64;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out
}

/// The version a value claims, if the value is well formed for `key`.
fn check_value(key: &[u8], value: &[u8]) -> Option<u64> {
    let version = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
    (value == value_for(key, version, value.len()).as_slice()).then_some(version)
}

fn value_len(i: u64, version: u64) -> usize {
    (i * 131 + version * 977) as usize % 6000 + 20
}

/// `stats()` computed from the live entries' handles and the file length,
/// by the definitions in `StoreStats`' docs.
fn expected_stats(store: &DataStore, path: &Path) -> StoreStats {
    let entries: Vec<EntryHandle> = store.iter_entries().collect();
    let spans: u64 = entries
        .iter()
        .map(|e| e.end_offset() - e.trailer().prev_end)
        .sum();
    let file_size = logical_len(path);
    let mut stats = StoreStats::default();
    stats.live_entries = entries.len() as u64;
    stats.live_bytes = entries.iter().map(|e| e.len() as u64).sum();
    stats.reclaimable_bytes = file_size - HEADER_LEN - spans;
    stats.file_size = file_size;
    stats
}

/// The length of a file holding exactly `entries` back to back, in this order.
fn packed_len(entries: &[EntryHandle]) -> u64 {
    entries.iter().fold(HEADER_LEN, |end, e| {
        let start = if e.is_empty() {
            end
        } else {
            end.div_ceil(64) * 64
        };
        start + e.len() as u64 + e.key().len() as u64 + TRAILER_LEN
    })
}

fn model_matches(store: &DataStore, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    assert_eq!(store.len(), model.len());
    for (key, value) in model {
        let got = store.read(key).expect("read").expect("live key present");
        assert!(got.as_slice() == value.as_slice(), "value of {key:?}");
    }
    let keys: Vec<Vec<u8>> = store.keys().collect();
    assert_eq!(keys.len(), model.len());
    assert!(keys.iter().all(|k| model.contains_key(k)));
}

#[test]
fn compaction_drops_dead_entries_with_exact_numbers() {
    let (dir, path) = temp_store();
    let store = DataStore::open(&path).expect("open");
    let empty = store.stats();
    assert_eq!(empty, expected_stats(&store, &path));
    assert_eq!(
        (empty.live_entries, empty.file_size, empty.reclaimable_bytes),
        (0, HEADER_LEN, 0)
    );

    let mut model = BTreeMap::new();
    let mut entries_written = 0u64;
    for i in 0..300u64 {
        let key = format!("key-{i}").into_bytes();
        let value = value_for(&key, 0, value_len(i, 0));
        store.write(&key, &value).expect("write");
        model.insert(key, value);
        entries_written += 1;
    }
    for i in (0..300u64).step_by(3) {
        let key = format!("key-{i}").into_bytes();
        let value = value_for(&key, 1, value_len(i, 1));
        store.write(&key, &value).expect("overwrite");
        model.insert(key, value);
        entries_written += 1;
    }
    let doomed: Vec<Vec<u8>> = (0..300u64)
        .step_by(7)
        .map(|i| format!("key-{i}").into_bytes())
        .collect();
    let doomed_refs: Vec<&[u8]> = doomed.iter().map(Vec::as_slice).collect();
    assert_eq!(
        store.batch_delete(&doomed_refs).expect("delete"),
        doomed.len()
    );
    entries_written += doomed.len() as u64;
    for key in &doomed {
        model.remove(key);
    }
    store.write(b"empty", b"").expect("write empty");
    model.insert(b"empty".to_vec(), Vec::new());
    entries_written += 1;
    store.rename(b"key-1", b"renamed").expect("rename");
    let moved = model.remove(&b"key-1"[..]).expect("key-1 is live");
    model.insert(b"renamed".to_vec(), moved);
    entries_written += 2;

    let before = store.stats();
    assert_eq!(before, expected_stats(&store, &path), "stats before");
    assert_eq!(before.live_entries, model.len() as u64);
    assert_eq!(
        before.live_bytes,
        model.values().map(|v| v.len() as u64).sum::<u64>()
    );
    assert!(before.reclaimable_bytes > 0);
    assert_eq!(store.file_size().expect("size"), before.file_size);

    // Handles taken before compaction, and the order compaction keeps.
    let mut handles: Vec<EntryHandle> = store.iter_entries().collect();
    handles.sort_by_key(EntryHandle::end_offset);
    let addresses: Vec<*const u8> = handles.iter().map(|h| h.as_ptr()).collect();
    let expected_after = packed_len(&handles);

    let copied = AtomicU64::new(0);
    let stats = store
        .compact_with_progress(|n| {
            copied.fetch_add(n, Ordering::Relaxed);
        })
        .expect("compact");
    assert_eq!(stats.bytes_before, before.file_size);
    assert_eq!(stats.bytes_after, logical_len(&path));
    assert_eq!(stats.bytes_after, expected_after, "live entries packed");
    assert_eq!(stats.entries_kept, model.len() as u64);
    assert_eq!(stats.entries_dropped, entries_written - model.len() as u64);
    assert_eq!(
        copied.load(Ordering::Relaxed),
        before.live_bytes,
        "progress"
    );

    let after = store.stats();
    assert_eq!(after, expected_stats(&store, &path), "stats after");
    assert_eq!(after.reclaimable_bytes, 0);
    assert_eq!(after.live_entries, before.live_entries);
    assert_eq!(after.live_bytes, before.live_bytes);
    assert_eq!(after.file_size, stats.bytes_after);
    model_matches(&store, &model);
    for (handle, address) in handles.iter().zip(&addresses) {
        assert_eq!(handle.as_ptr(), *address, "handle not moved");
        assert!(
            model.get(handle.key()).map(Vec::as_slice) == Some(handle.as_slice()),
            "handle unchanged"
        );
        assert!(handle.verify_checksum());
    }
    for entry in store.iter_entries() {
        if !entry.is_empty() {
            assert_eq!(
                entry.offset_range().start % 64,
                0,
                "aligned after compaction"
            );
        }
        assert!(entry.verify_checksum());
    }
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        // The index sidecar is a cache that every writable close may leave.
        .filter(|name| !name.to_string_lossy().ends_with(".index"))
        .collect();
    assert_eq!(names, ["s.mmblob"], "no temporary file left");

    // Compacting a compact store changes nothing but still reports.
    let again = store.compact().expect("compact again");
    assert_eq!(again.bytes_before, again.bytes_after);
    assert_eq!(again.entries_dropped, 0);
    assert_eq!(again.entries_kept, model.len() as u64);

    // Writing after compaction keeps the numbers exact.
    store.write(b"key-2", b"after").expect("write after");
    model.insert(b"key-2".to_vec(), b"after".to_vec());
    store.delete(b"key-4").expect("delete after");
    model.remove(&b"key-4"[..]);
    assert_eq!(store.stats(), expected_stats(&store, &path));
    model_matches(&store, &model);

    drop(store);
    drop(handles);
    let store = DataStore::open_existing(&path).expect("reopen after compaction");
    model_matches(&store, &model);
    assert!(store.verify().expect("verify").is_ok());
    assert_eq!(
        store.stats(),
        expected_stats(&store, &path),
        "stats after reopen"
    );
}

#[test]
fn compacting_empty_and_all_deleted_stores() {
    let (_dir, path) = temp_store();
    let store = DataStore::open(&path).expect("open");
    let stats = store.compact().expect("compact empty store");
    assert_eq!(
        (
            stats.bytes_before,
            stats.bytes_after,
            stats.entries_kept,
            stats.entries_dropped
        ),
        (HEADER_LEN, HEADER_LEN, 0, 0)
    );
    store.write(b"a", b"1").expect("write");
    store.write(b"b", &[7u8; 5000]).expect("write");
    store.batch_delete(&[b"a", b"b"]).expect("delete");
    let stats = store.compact().expect("compact");
    assert_eq!(stats.bytes_after, HEADER_LEN);
    assert_eq!((stats.entries_kept, stats.entries_dropped), (0, 4));
    assert_eq!(file_len(&path), HEADER_LEN);
    assert_eq!(store.stats(), expected_stats(&store, &path));
    store
        .write(b"c", b"after")
        .expect("write to a compacted empty store");
    drop(store);
    let store = DataStore::open_existing(&path).expect("reopen");
    assert_eq!(store.len(), 1);
    assert_eq!(
        &*store.read(b"c").expect("read").expect("present"),
        b"after"
    );
}

#[test]
fn read_only_handles_cannot_compact_and_follow_a_compaction() {
    let (_dir, path) = temp_store();
    let store = DataStore::open(&path).expect("open");
    for i in 0..50u32 {
        store
            .write(&i.to_le_bytes(), &[i as u8; 100])
            .expect("write");
        store
            .write(&i.to_le_bytes(), &[i as u8; 10])
            .expect("overwrite");
    }
    let reader = OpenOptions::new()
        .read_only(true)
        .open(&path)
        .expect("open read-only");
    assert!(matches!(reader.compact(), Err(Error::ReadOnly { .. })));
    let held = reader
        .read(&7u32.to_le_bytes())
        .expect("read")
        .expect("present");
    store.compact().expect("compact");
    store.write(b"new", b"after compaction").expect("write");
    reader.refresh().expect("refresh follows the new file");
    assert_eq!(reader.len(), 51);
    assert_eq!(
        reader.read(b"new").expect("read").as_deref(),
        Some(&b"after compaction"[..])
    );
    assert_eq!(&*held, &[7u8; 10], "handle from before stays valid");
    assert_eq!(reader.stats().file_size, logical_len(&path));
}

#[test]
fn readers_and_writers_in_other_threads_run_through_compaction() {
    const STABLE: u64 = 400;
    const ROUNDS: usize = 4;
    let (_dir, path) = temp_store();
    let store = Arc::new(DataStore::open(&path).expect("open"));
    // Stable keys plus garbage, so compaction has work to do.
    for version in 0..3 {
        for i in 0..STABLE {
            let key = format!("stable-{i}").into_bytes();
            store
                .write(&key, &value_for(&key, version, value_len(i, version)))
                .expect("write");
        }
    }
    let done = Arc::new(AtomicBool::new(false));
    let compacting = Arc::new(AtomicBool::new(false));
    let reads_during_compaction = Arc::new(AtomicU64::new(0));
    let writes_during_compaction = Arc::new(AtomicU64::new(0));

    let readers: Vec<_> = (0..2u64)
        .map(|r| {
            let (store, done) = (Arc::clone(&store), Arc::clone(&done));
            let (compacting, during) = (
                Arc::clone(&compacting),
                Arc::clone(&reads_during_compaction),
            );
            std::thread::spawn(move || {
                let mut rounds = 0u64;
                while !done.load(Ordering::Acquire) || rounds == 0 {
                    for i in 0..STABLE {
                        let i = (i * 7 + r * 13 + rounds) % STABLE;
                        let key = format!("stable-{i}").into_bytes();
                        let was_compacting = compacting.load(Ordering::Acquire);
                        // One reader takes handles, the other borrows.
                        let version = if r == 0 {
                            store
                                .read(&key)
                                .expect("read")
                                .map(|entry| check_value(&key, &entry))
                        } else {
                            store
                                .read_with(&key, |value| check_value(&key, value))
                                .expect("read_with")
                        };
                        assert_eq!(
                            version.unwrap_or_else(|| panic!("stable key {i} missing")),
                            Some(2),
                            "stable key {i} has a wrong value"
                        );
                        if was_compacting && compacting.load(Ordering::Acquire) {
                            during.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // Whole-store iteration sees every stable key once.
                    if rounds.is_multiple_of(8) {
                        let seen = store
                            .iter_entries()
                            .filter(|e| e.key().starts_with(b"stable-"))
                            .inspect(|e| assert_eq!(check_value(e.key(), e), Some(2)))
                            .count();
                        assert_eq!(seen as u64, STABLE, "iteration lost stable keys");
                    }
                    rounds += 1;
                }
            })
        })
        .collect();

    let acked: Arc<Mutex<Acked>> = Arc::default();
    let writer = {
        let (store, done, acked) = (Arc::clone(&store), Arc::clone(&done), Arc::clone(&acked));
        let (compacting, during) = (
            Arc::clone(&compacting),
            Arc::clone(&writes_during_compaction),
        );
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !done.load(Ordering::Acquire) {
                let key = format!("written-{}", n % 150).into_bytes();
                let was_compacting = compacting.load(Ordering::Acquire);
                let value = if n % 11 == 10 {
                    store.delete(&key).expect("delete during compaction");
                    None
                } else {
                    let value = value_for(&key, n, value_len(n, 5));
                    store.write(&key, &value).expect("write during compaction");
                    Some(value)
                };
                if was_compacting {
                    during.fetch_add(1, Ordering::Relaxed);
                }
                acked.lock().expect("lock").insert(key, value);
                n += 1;
            }
        })
    };

    let mut total_kept = 0;
    for _ in 0..ROUNDS {
        // More garbage for each round.
        for i in (0..STABLE).step_by(5) {
            let key = format!("stable-{i}").into_bytes();
            store
                .write(&key, &value_for(&key, 2, value_len(i, 2)))
                .expect("rewrite");
        }
        compacting.store(true, Ordering::Release);
        let stats = store.compact().expect("compact");
        compacting.store(false, Ordering::Release);
        assert!(stats.bytes_after < stats.bytes_before);
        total_kept += stats.entries_kept;
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        reader.join().expect("reader saw only right values");
    }
    writer.join().expect("writer never failed");
    assert!(total_kept >= STABLE * ROUNDS as u64);
    assert!(
        reads_during_compaction.load(Ordering::Relaxed) > 0,
        "readers ran while compaction ran"
    );
    eprintln!(
        "{} reads and {} writes completed while compaction ran",
        reads_during_compaction.load(Ordering::Relaxed),
        writes_during_compaction.load(Ordering::Relaxed)
    );

    let check = |store: &DataStore| {
        for (key, value) in acked.lock().expect("lock").iter() {
            let got = store.read(key).expect("read").map(|e| e.to_vec());
            assert_eq!(&got, value, "acknowledged write of {key:?}");
        }
        for i in 0..STABLE {
            let key = format!("stable-{i}").into_bytes();
            let got = store.read(&key).expect("read").expect("stable key");
            assert_eq!(check_value(&key, &got), Some(2));
        }
        assert_eq!(store.stats(), expected_stats(store, &path));
    };
    check(&store);
    drop(store);
    let store = DataStore::open_existing(&path).expect("reopen");
    check(&store);
    assert!(store.verify().expect("verify").is_ok());
}

#[test]
fn compaction_refuses_to_hide_a_damaged_live_value() {
    let (dir, path) = temp_store();
    let store = DataStore::open(&path).expect("open");
    store.write(b"damaged", &[1u8; 1000]).expect("write");
    store.write(b"dead", &[3u8; 1000]).expect("write");
    let damaged_at = store
        .read(b"damaged")
        .expect("read")
        .expect("present")
        .offset_range();
    let dead_at = store
        .read(b"dead")
        .expect("read")
        .expect("present")
        .offset_range();
    store.write(b"dead", b"overwritten").expect("overwrite");
    store.write(b"intact", b"tail entry").expect("write");
    drop(store);
    // Flip a byte inside a live value and one inside an overwritten one.
    let mut bytes = std::fs::read(&path).expect("read file");
    bytes[damaged_at.start as usize + 10] ^= 0xff;
    bytes[dead_at.start as usize + 10] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write file");

    let store = DataStore::open(&path).expect("lenient open");
    let err = store
        .compact()
        .expect_err("compaction must not launder damage");
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains("\"damaged\""),
        "names the key: {err}"
    );
    assert_eq!(
        std::fs::read(&path).expect("read file"),
        bytes,
        "store unchanged"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        // The index sidecar is a cache that every writable close may leave.
        .filter(|name| !name.to_string_lossy().ends_with(".index"))
        .collect();
    assert_eq!(names, ["s.mmblob"], "no temporary file left");
    assert!(
        store
            .damage()
            .iter()
            .any(|d| d.range.contains(&damaged_at.start)),
        "the damaged entry is recorded: {:?}",
        store.damage()
    );
    assert_eq!(store.verify().expect("verify").damaged.len(), 2);

    // Rewriting the damaged key lets compaction drop both damaged entries.
    store.write(b"damaged", b"rewritten").expect("rewrite");
    let stats = store.compact().expect("compact after the rewrite");
    assert_eq!(stats.entries_kept, 3);
    assert!(store.verify().expect("verify").is_ok());
    assert_eq!(
        store.read(b"damaged").expect("read").as_deref(),
        Some(&b"rewritten"[..])
    );
}

#[test]
fn compacting_through_a_symlink_replaces_the_file_it_points_to() {
    let dir = tempfile::tempdir().expect("temp dir");
    let real_dir = dir.path().join("versions");
    std::fs::create_dir(&real_dir).expect("mkdir");
    let real = real_dir.join("v1.mmblob");
    let link = dir.path().join("current.mmblob");
    drop(DataStore::open(&real).expect("create the store"));
    std::os::unix::fs::symlink(&real, &link).expect("symlink");

    let store = DataStore::open(&link).expect("open through the link");
    store.write(b"a", &[1u8; 5000]).expect("write");
    store.write(b"a", b"newest").expect("overwrite");
    let stats = store.compact().expect("compact");
    assert_eq!(stats.entries_dropped, 1);
    store.write(b"b", b"after compaction").expect("write");

    assert!(
        std::fs::symlink_metadata(&link)
            .expect("link metadata")
            .file_type()
            .is_symlink(),
        "the link is still a link"
    );
    assert_eq!(logical_len(&real), store.file_size().expect("size"));
    let by_real_name = OpenOptions::new()
        .read_only(true)
        .open(&real)
        .expect("open the real file");
    assert_eq!(
        by_real_name.read(b"a").expect("read").as_deref(),
        Some(&b"newest"[..])
    );
    assert_eq!(
        by_real_name.read(b"b").expect("read").as_deref(),
        Some(&b"after compaction"[..]),
        "the real file is the store, not a stale copy"
    );
    let names = |d: &Path| -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(d)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            // The index sidecar is a cache that every writable close may leave.
            .filter(|name| !name.ends_with(".index"))
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&real_dir), ["v1.mmblob"]);
    assert_eq!(names(dir.path()), ["current.mmblob", "versions"]);

    // A crashed compaction's leftover lies next to the real file; a
    // writable open through the link removes it.
    drop((store, by_real_name));
    std::fs::write(real_dir.join(".v1.mmblob.compacting"), b"leftover").expect("write");
    drop(DataStore::open(&link).expect("reopen through the link"));
    assert_eq!(names(&real_dir), ["v1.mmblob"]);
}
