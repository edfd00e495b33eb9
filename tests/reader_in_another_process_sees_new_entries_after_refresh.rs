//! A read-only handle in one process follows a writer in another.
//!
//! The parent holds a read-only handle (and a thread that reads and
//! iterates through it nonstop) while a child process appends, overwrites,
//! deletes and finally compacts. After every acknowledged operation the
//! parent calls `refresh()` and must see it. After the compaction, which
//! renames a new file over the store, `refresh()` follows the new file,
//! handles taken before stay valid, and later appends are seen too. No read
//! ever faults: a SIGBUS would kill the test. The writer copies its entries
//! into a writable map of space it reserved ahead, so the file is longer
//! than what the reader sees (zeros the reader skips); when the writer
//! closes, it trims that space, and the file ends where the reader's view
//! ends.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mmblob::{DataStore, OpenOptions};
use support::child;
use support::rng::{Rng, value_for};

const APPENDS: u64 = 300;

/// The child: the only writer.
#[test]
fn child_appends_then_compacts() {
    if child::role().as_deref() != Some("writer") {
        return;
    }
    let store = DataStore::open(child::store_path()).expect("child: open for writing");
    let mut rng = Rng::new(99);
    for i in 0..APPENDS {
        let key = format!("k{i}");
        store
            .write(key.as_bytes(), &value_for(key.as_bytes()))
            .expect("child: write");
        child::say(&format!("put {key}"));
        if i % 10 == 9 {
            // Overwrite an older key with the value of a different one.
            let old = format!("k{}", rng.below(i));
            let new_value = value_for(format!("{old}-v2").as_bytes());
            store
                .write(old.as_bytes(), &new_value)
                .expect("child: overwrite");
            child::say(&format!("put2 {old}"));
        }
        if i % 25 == 24 {
            let victim = format!("k{}", rng.below(i));
            if store.delete(victim.as_bytes()).expect("child: delete") {
                child::say(&format!("del {victim}"));
            }
        }
    }
    let before = store.file_size().expect("child: size");
    // Whether the file holds space reserved past the entries right now (the
    // parent may only get to look after the compaction below).
    let len = std::fs::metadata(child::store_path())
        .expect("child: metadata")
        .len();
    child::say(&format!("reserved {}", len > before));
    store.compact().expect("child: compact");
    let after = store.file_size().expect("child: size");
    child::say(&format!("compacted {before} {after}"));
    assert_eq!(child::wait_for_parent(), "go on");
    for i in 0..50 {
        let key = format!("after{i}");
        store
            .write(key.as_bytes(), &value_for(key.as_bytes()))
            .expect("child: write after compaction");
        child::say(&format!("put {key}"));
    }
    child::say("done");
}

/// Every value each key had, in the order the child acknowledged them
/// (`None` = deleted).
type History = BTreeMap<String, Vec<Option<Vec<u8>>>>;

/// What the reader showed for a key, and the oldest version it may show:
/// the child runs ahead, so a refresh may already show newer writes.
struct Observation {
    key: String,
    oldest: usize,
    seen: Option<Vec<u8>>,
}

fn observe(reader: &DataStore, history: &History, key: &str) -> Observation {
    Observation {
        key: key.to_owned(),
        oldest: history[key].len() - 1,
        seen: reader
            .read(key.as_bytes())
            .expect("read")
            .map(|e| e.to_vec()),
    }
}

/// With the child paused: the reader shows exactly the newest version of
/// every key and nothing else.
fn check_exact(reader: &DataStore, history: &History) {
    for (key, versions) in history {
        let got = reader.read(key.as_bytes()).expect("read");
        let newest = versions.last().expect("a version");
        assert_eq!(got.as_deref(), newest.as_deref(), "reader's view of {key}");
    }
    let live = history
        .values()
        .filter(|v| matches!(v.last(), Some(Some(_))))
        .count();
    assert_eq!(reader.len(), live, "live keys seen by the reader");
}

#[test]
fn reader_in_another_process_sees_new_entries_after_refresh() {
    if child::role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shared.mmblob");
    {
        let seed = DataStore::open(&path).expect("create");
        seed.write(b"seed", b"present before the reader opened")
            .expect("write");
    }
    let reader = Arc::new(
        OpenOptions::new()
            .read_only(true)
            .open(&path)
            .expect("read-only open"),
    );
    let mut history = History::new();
    history.insert(
        "seed".into(),
        vec![Some(b"present before the reader opened".to_vec())],
    );
    let mut observations = Vec::new();

    // Reads (by handle and borrowed) and iteration through the same handle, nonstop, while the
    // other process appends and compacts and this thread refreshes.
    let stop = Arc::new(AtomicBool::new(false));
    let touched = Arc::new(AtomicU64::new(0));
    let hammer = {
        let (reader, stop, touched) =
            (Arc::clone(&reader), Arc::clone(&stop), Arc::clone(&touched));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let mut sum = 0u64;
                for entry in reader.iter_entries() {
                    sum += entry.iter().map(|&b| u64::from(b)).sum::<u64>();
                    assert!(!entry.key().is_empty());
                }
                let seed = reader
                    .read(b"seed")
                    .expect("read")
                    .expect("seed is never deleted");
                assert_eq!(&*seed, b"present before the reader opened");
                let borrowed = reader
                    .read_with(b"seed", |value| {
                        value == b"present before the reader opened"
                    })
                    .expect("read_with");
                assert_eq!(borrowed, Some(true), "read_with sees the seed");
                touched.fetch_add(1 + sum % 2, Ordering::Relaxed);
            }
        })
    };

    let mut writer = child::spawn("child_appends_then_compacts", "writer", &path, 0);
    let mut refreshes = 0;
    let mut saw_reservation = false;
    let first_handle = loop {
        let event = writer.expect_event("the first write");
        if let Some(key) = event.strip_prefix("put ") {
            reader.refresh().expect("refresh");
            history.insert(key.to_owned(), vec![Some(value_for(key.as_bytes()))]);
            observations.push(observe(&reader, &history, key));
            break reader
                .read(key.as_bytes())
                .expect("read")
                .expect("seen after refresh");
        }
    };
    // The child runs ahead, so this may already be a newer version of the key.
    let (first_key, first_value) = (first_handle.key().to_vec(), first_handle.to_vec());
    assert!(
        history[std::str::from_utf8(&first_key).expect("utf-8 key")]
            .iter()
            .any(|v| v.as_deref() == Some(&first_value[..]))
            || first_value
                == value_for(format!("{}-v2", String::from_utf8_lossy(&first_key)).as_bytes()),
        "the first read shows a value the child wrote"
    );
    let (before, compacted_size): (u64, u64) = loop {
        let event = writer.expect_event("the compaction");
        if let Some(sizes) = event.strip_prefix("compacted ") {
            let (before, after) = sizes.split_once(' ').expect("two sizes");
            break (before.parse().expect("size"), after.parse().expect("size"));
        }
        if let Some(reserved) = event.strip_prefix("reserved ") {
            saw_reservation |= reserved == "true";
            continue;
        }
        let (kind, key) = event.split_once(' ').expect("event");
        let value = match kind {
            "put" => Some(value_for(key.as_bytes())),
            "put2" => Some(value_for(format!("{key}-v2").as_bytes())),
            "del" => None,
            _ => panic!("unexpected event {event}"),
        };
        history.entry(key.to_owned()).or_default().push(value);
        reader.refresh().expect("refresh");
        refreshes += 1;
        observations.push(observe(&reader, &history, key));
        if refreshes % 50 == 0 {
            let keys: Vec<String> = history.keys().cloned().collect();
            observations.extend(keys.iter().map(|k| observe(&reader, &history, k)));
        }
    };

    assert!(
        saw_reservation,
        "the writer never kept space reserved after its entries"
    );
    // The writer renamed a compacted file over the store.
    reader
        .refresh()
        .expect("refresh follows the compacted file");
    assert_eq!(reader.file_size().expect("size"), compacted_size);
    assert!(compacted_size < before, "{compacted_size} < {before}");
    check_exact(&reader, &history);
    assert!(reader.verify().expect("verify").is_ok());
    assert_eq!(
        (first_handle.key(), &*first_handle),
        (first_key.as_slice(), first_value.as_slice()),
        "a handle from before the compaction stays valid"
    );

    writer.tell("go on");
    for event in writer.wait_success() {
        if let Some(key) = event.strip_prefix("put ") {
            history.insert(key.to_owned(), vec![Some(value_for(key.as_bytes()))]);
        }
    }
    reader.refresh().expect("refresh after the writer finished");
    check_exact(&reader, &history);
    assert_eq!(
        reader.file_size().expect("size"),
        std::fs::metadata(&path).expect("meta").len()
    );

    // Each refresh showed the acknowledged version of a key or a newer one.
    assert!(observations.len() > APPENDS as usize);
    for Observation { key, oldest, seen } in &observations {
        assert!(
            history[key][*oldest..].contains(seen),
            "after refresh the reader showed {key} older than acknowledged (or never written)"
        );
    }

    stop.store(true, Ordering::Relaxed);
    hammer.join().expect("the reading thread never failed");
    assert!(touched.load(Ordering::Relaxed) > 0);
}
