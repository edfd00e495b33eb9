//! One flipped bit anywhere in a store costs at most the entry it lands in.
//!
//! A store of 30 entries (values of many sizes, empty values, overwrites,
//! tombstones, a batch) is damaged one bit at a time: every byte of every
//! trailer, key and small payload, and a sample of the bytes of large
//! payloads and padding. Each damaged copy must open without a panic; a flip
//! in the middle leaves the file length unchanged and changes at most the
//! key of the entry it hit; the damage is reported (`damage()` after open or
//! `verify()`, with an `error!` event) whenever a checksummed byte was hit,
//! and `strict(true)` then refuses the store with a typed error. A flip in
//! the last entry is damage like any other (its bytes stay, open reports it
//! and a read of its key fails with `Error::Corrupt`), except a flip that
//! makes its trailer disagree with its position: that tail is not a
//! complete entry, so it is cut like a torn write, and nothing else is.
//! A flip in the 64-byte header is a typed error and the file is left as
//! it was.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mmblob::format::{HEADER_LEN, TRAILER_LEN, Trailer};
use mmblob::{DataStore, Error, OpenOptions};
use support::rng::Rng;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Where one entry lies in the file.
#[derive(Debug, Clone)]
struct Entry {
    prev_end: u64,
    payload_start: u64,
    key_start: u64,
    end: u64,
    key: Vec<u8>,
}

/// Reads the entries of an undamaged store file by walking its trailers.
fn entries_of(bytes: &[u8]) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut end = bytes.len() as u64;
    while end > HEADER_LEN {
        let at = (end - TRAILER_LEN) as usize;
        let raw: [u8; 32] = bytes[at..at + 32].try_into().expect("32 bytes");
        let layout = Trailer::decode(&raw)
            .layout(end)
            .expect("the undamaged store has a consistent chain");
        entries.push(Entry {
            prev_end: layout.prev_end,
            payload_start: layout.payload_start,
            key_start: layout.key_start,
            end,
            key: bytes[layout.key_start as usize..layout.trailer_start as usize].to_vec(),
        });
        end = layout.prev_end;
    }
    entries.reverse();
    entries
}

/// Builds the store: 30 entries, and the live keys and values it holds.
fn build(path: &Path) -> Model {
    let store = DataStore::open(path).expect("create");
    let mut model = Model::new();
    let put = |model: &mut Model, key: &str, value: Vec<u8>| {
        store.write(key.as_bytes(), &value).expect("write");
        model.insert(key.as_bytes().to_vec(), value);
    };
    let sizes = [
        0usize, 1, 2, 31, 63, 64, 65, 100, 127, 128, 200, 500, 1000, 4095, 4097, 20_000,
    ];
    for (i, &size) in sizes.iter().enumerate() {
        put(
            &mut model,
            &format!("v{i}"),
            (0..size).map(|j| (j * 7 + i) as u8).collect(),
        );
    }
    put(&mut model, "v3", b"overwritten".to_vec());
    put(&mut model, "empty-a", Vec::new());
    put(&mut model, "zero", vec![0]);
    for key in ["v5", "v7", "empty-a"] {
        assert!(store.delete(key.as_bytes()).expect("delete"));
        model.remove(key.as_bytes());
    }
    let batch: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"batch-1".to_vec(), vec![1; 70]),
        (b"batch-2".to_vec(), Vec::new()),
        (b"batch-3".to_vec(), vec![3; 3]),
    ];
    let refs: Vec<(&[u8], &[u8])> = batch
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    store.batch_write(&refs).expect("batch");
    model.extend(batch);
    put(&mut model, "empty-b", Vec::new());
    put(&mut model, "a-long-key-".repeat(20).as_str(), vec![9; 40]);
    put(&mut model, "v10", b"newer".to_vec());
    put(&mut model, "v1", b"again".to_vec());
    put(&mut model, "last", b"the tail entry".to_vec());
    drop(store);
    model
}

/// The offsets to damage: every byte of trailers, keys and payloads up to
/// 256 bytes; 24 bytes of each larger payload (its ends and a sample); two
/// padding bytes per entry.
fn offsets_to_flip(entries: &[Entry], rng: &mut Rng) -> Vec<u64> {
    let mut offsets = Vec::new();
    for e in entries {
        if e.payload_start > e.prev_end {
            offsets.push(e.prev_end);
            offsets.push(e.payload_start - 1);
        }
        let payload = e.key_start - e.payload_start;
        if payload <= 256 {
            offsets.extend(e.payload_start..e.key_start);
        } else {
            offsets.extend(e.payload_start..e.payload_start + 8);
            offsets.extend(e.key_start - 8..e.key_start);
            offsets.extend((0..8).map(|_| e.payload_start + 8 + rng.below(payload - 16)));
        }
        offsets.extend(e.key_start..e.end);
    }
    offsets
}

/// Counts the `error!` events emitted where it is the default subscriber.
#[derive(Default)]
struct ErrorEvents(AtomicUsize);

impl ErrorEvents {
    fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl tracing::Subscriber for ErrorEvents {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Keys whose value differs from the model (or that appeared from nowhere,
/// or whose read fails because their entry is known damaged).
fn differing_keys(store: &DataStore, model: &Model) -> Vec<Vec<u8>> {
    let mut differ = Vec::new();
    for (key, value) in model {
        match store.read(key) {
            Ok(Some(entry)) if *entry == **value => {}
            Ok(_) | Err(Error::Corrupt { .. }) => differ.push(key.clone()),
            Err(e) => panic!("read of {key:?} failed with {e:?}"),
        }
    }
    for entry in store.iter_entries() {
        if !model.contains_key(entry.key()) {
            differ.push(entry.key().to_vec());
        }
    }
    differ
}

#[test]
fn flipped_byte_costs_at_most_one_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let original_path = dir.path().join("original.mmblob");
    let model = build(&original_path);
    let original = std::fs::read(&original_path).expect("read store");
    let entries = entries_of(&original);
    assert_eq!(entries.len(), 30);
    let path = dir.path().join("damaged.mmblob");
    let mut rng = Rng::new(0xf11b);
    let offsets = offsets_to_flip(&entries, &mut rng);
    let (mut detected, mut harmless, mut torn, mut tail_damage) = (0, 0, 0, 0);
    for &offset in &offsets {
        let bit = (offset * 3 + rng.below(8)) % 8;
        let hit = entries
            .iter()
            .find(|e| e.prev_end <= offset && offset < e.end)
            .expect("every byte past the header belongs to an entry");
        let is_tail = hit.end == original.len() as u64;
        let checksummed = offset >= hit.payload_start;
        let what = format!(
            "bit {bit} of byte {offset} (entry {:?}, {})",
            String::from_utf8_lossy(&hit.key),
            if checksummed {
                "checksummed"
            } else {
                "padding"
            }
        );
        let mut damaged = original.clone();
        damaged[offset as usize] ^= 1 << bit;
        std::fs::write(&path, &damaged).expect("write damaged copy");

        let errors = Arc::new(ErrorEvents::default());
        let store =
            tracing::subscriber::with_default(Arc::clone(&errors), || DataStore::open(&path))
                .unwrap_or_else(|e| panic!("{what}: open failed: {e}"));
        let len = std::fs::metadata(&path).expect("metadata").len();
        let differ = differing_keys(&store, &model);
        assert!(
            differ.iter().all(|k| *k == hit.key),
            "{what}: other keys changed: {:?}",
            differ
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>()
        );
        if is_tail && len != original.len() as u64 {
            // A last trailer that disagrees with its position ends no
            // complete entry: a torn write, and it alone is cut.
            assert_eq!(len, hit.prev_end, "{what}: torn tail cut elsewhere");
            assert!(
                offset >= hit.end - 32 && offset < hit.end - 4,
                "{what}: a flip outside the trailer's structural fields cut the tail"
            );
            torn += 1;
            drop(store);
            continue;
        }
        if is_tail && checksummed {
            // Damage in the last entry is found at open, and its key is
            // hidden behind a typed error.
            assert!(
                store.damage().iter().any(|d| d.range.contains(&offset)),
                "{what}: damage in the last entry not reported at open: {:?}",
                store.damage()
            );
            assert!(errors.count() > 0, "{what}: no error! event at open");
            // Its key is named when it can still be read (the flip is not
            // in the key or the key hash); otherwise the key is unknown.
            let key_readable = offset < hit.key_start
                || !(hit.key_start..hit.end - 16).contains(&offset)
                    && !(hit.end - 24..hit.end - 16).contains(&offset);
            let read = store.read(b"last");
            assert!(
                matches!(read, Err(Error::Corrupt { .. }))
                    || !key_readable && matches!(read, Ok(None)),
                "{what}: the damaged last entry reads as {read:?}"
            );
            tail_damage += 1;
        }
        assert_eq!(len, original.len() as u64, "{what}: file length changed");
        let report = tracing::subscriber::with_default(Arc::clone(&errors), || store.verify())
            .expect("verify");
        let reported = store.damage().iter().any(|d| d.range.contains(&offset));
        if checksummed {
            assert!(
                reported,
                "{what}: damage not reported: {:?}",
                store.damage()
            );
            assert!(!report.is_ok(), "{what}: verify found nothing");
            assert!(errors.count() > 0, "{what}: no error! event");
            if let Ok(Some(entry)) = store.read(&hit.key)
                && entry.offset_range().contains(&offset)
            {
                assert!(
                    !entry.verify_checksum(),
                    "{what}: checksum of the damaged value"
                );
            }
            detected += 1;
        } else {
            assert!(differ.is_empty(), "{what}: a padding flip changed a value");
            assert_eq!(errors.count(), 0, "{what}: error! events without damage");
            assert!(
                report.is_ok() && store.damage().is_empty(),
                "{what}: {report:?}"
            );
            harmless += 1;
        }
        drop(store);

        let strict = OpenOptions::new().strict(true).open(&path);
        match (checksummed, strict) {
            (true, Err(Error::Corrupt { .. })) | (false, Ok(_)) => {}
            (true, other) => panic!("{what}: strict open gave {other:?}"),
            (false, Err(e)) => panic!("{what}: strict open refused an intact store: {e}"),
        }
    }
    assert!(
        detected > 1000 && harmless > 10 && torn > 10 && tail_damage > 10,
        "{detected} {harmless} {torn} {tail_damage}"
    );
}

#[test]
fn flipped_header_bit_is_a_typed_error_and_the_file_is_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let original_path = dir.path().join("original.mmblob");
    build(&original_path);
    let original = std::fs::read(&original_path).expect("read store");
    let path = dir.path().join("damaged.mmblob");
    for offset in 0..HEADER_LEN as usize {
        for bit in 0..8 {
            let mut damaged = original.clone();
            damaged[offset] ^= 1 << bit;
            std::fs::write(&path, &damaged).expect("write damaged copy");
            for read_only in [false, true] {
                let err = OpenOptions::new()
                    .read_only(read_only)
                    .open(&path)
                    .expect_err("a damaged header must not open");
                match (offset, &err) {
                    (0..8, Error::NotAStore { .. }) => {}
                    (8.., Error::Corrupt { offset: 0, .. }) => {}
                    _ => panic!("bit {bit} of header byte {offset}: {err:?}"),
                }
                assert!(
                    std::fs::read(&path).expect("read") == damaged,
                    "bit {bit} of header byte {offset}: the file was changed"
                );
            }
        }
    }
}

/// `path` + `.index`: the index snapshot a large store leaves on close.
fn sidecar(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".index");
    name.into()
}

/// A store large enough to leave an index snapshot opens from it without
/// walking the chain, so damage below the snapshot is not seen at open. It
/// still costs at most the entry it hits (whose read may then fail with a
/// typed error instead of skipping to an older value, and which is listed
/// under its damaged key when the damage is in the key), and `verify()`
/// reports it.
#[test]
fn flipped_byte_under_an_index_snapshot_costs_at_most_one_entry() {
    const KEYS: usize = 10_500;
    let dir = tempfile::tempdir().expect("temp dir");
    let original_path = dir.path().join("original.mmblob");
    let mut model = Model::new();
    {
        let store = DataStore::open(&original_path).expect("create");
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..KEYS)
            .map(|i| {
                let key = format!("key-{i}").into_bytes();
                let value = vec![i as u8; i % 97];
                (key, value)
            })
            .collect();
        for chunk in entries.chunks(750) {
            let refs: Vec<(&[u8], &[u8])> = chunk
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect();
            store.batch_write(&refs).expect("batch");
        }
        model.extend(entries);
    }
    let original = std::fs::read(&original_path).expect("read store");
    let snapshot = std::fs::read(sidecar(&original_path)).expect("a large store leaves a snapshot");
    let entries = entries_of(&original);
    let path = dir.path().join("damaged.mmblob");
    let mut rng = Rng::new(0x51de);
    // Every byte of one key and trailer, plus a random sample.
    let middle = &entries[KEYS / 2];
    let mut offsets: Vec<u64> = (middle.key_start..middle.end).collect();
    offsets.extend((0..16).map(|_| HEADER_LEN + rng.below(original.len() as u64 - HEADER_LEN)));
    for offset in offsets {
        let hit = entries
            .iter()
            .find(|e| e.prev_end <= offset && offset < e.end)
            .expect("every byte past the header belongs to an entry");
        if hit.end == original.len() as u64 {
            continue; // the torn-tail case is covered above
        }
        let what = format!(
            "byte {offset} (entry {:?})",
            String::from_utf8_lossy(&hit.key)
        );
        let mut damaged = original.clone();
        damaged[offset as usize] ^= 1 << (offset % 8);
        std::fs::write(&path, &damaged).expect("write damaged copy");
        std::fs::write(sidecar(&path), &snapshot).expect("copy the snapshot");

        let store = DataStore::open(&path).unwrap_or_else(|e| panic!("{what}: open: {e}"));
        assert_eq!(
            std::fs::metadata(&path).expect("meta").len(),
            original.len() as u64,
            "{what}: file length changed"
        );
        // Iteration yields every other entry unchanged. The hit entry may
        // be listed as it is now: the snapshot indexed it before the damage,
        // so a damaged key shows (possibly as the name of another key).
        let mut seen = std::collections::BTreeSet::new();
        for entry in store.iter_entries() {
            if model.get(entry.key()).map(Vec::as_slice) == Some(&*entry) {
                seen.insert(entry.key().to_vec());
            } else {
                assert_eq!(
                    entry.end_offset(),
                    hit.end,
                    "{what}: entry {:?} changed",
                    entry
                );
            }
        }
        let mut differ: Vec<Vec<u8>> = model
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        let listed = store.len();
        if listed + 1 < model.len() || listed > model.len() {
            panic!("{what}: {listed} keys listed of {}", model.len());
        }
        for key in [&hit.key, &b"key-0".to_vec(), &b"key-10000".to_vec()] {
            match store.read(key) {
                Ok(Some(entry)) if model.get(key.as_slice()) == Some(&entry.to_vec()) => {}
                Ok(_) | Err(Error::Corrupt { .. }) => differ.push(key.clone()),
                Err(e) => panic!("{what}: read failed with {e:?}"),
            }
        }
        assert!(
            differ.iter().all(|k| *k == hit.key),
            "{what}: other keys changed: {:?}",
            differ
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect::<Vec<_>>()
        );
        if offset >= hit.payload_start {
            let report = store.verify().expect("verify");
            assert!(
                report.damaged.iter().any(|d| d.range.contains(&offset)),
                "{what}: verify missed it: {report:?}"
            );
        }
    }
}
