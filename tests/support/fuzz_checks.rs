//! The checks behind the fuzz targets in `fuzz/`, shared with the test that
//! replays their regression corpus (`tests/fuzz_regressions_replay.rs`).
//!
//! Each check takes raw fuzz input and panics when mmblob breaks its
//! contract on it. This file must stay self-contained: the fuzz crate
//! includes it with `#[path]`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use mmblob::format::{Header, Trailer, align_up};
use mmblob::{DamageKind, DataStore, Error, OpenOptions};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Reads fuzz input front to back; past its end every byte is zero.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 0 }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte without taking it.
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        let mut out = [0u8; 8];
        for b in &mut out {
            *b = self.byte();
        }
        u64::from_le_bytes(out)
    }

    /// Up to `n` bytes (fewer at the end of the input).
    fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = start + n;
        &self.data[start..end]
    }
}

// ---------------------------------------------------------------------------
// open_arbitrary_bytes
// ---------------------------------------------------------------------------

/// Fuzz target `open_arbitrary_bytes`: turns the input into a file image
/// (raw bytes, or a well-formed store that is then damaged) and checks what
/// opening it does.
pub fn open_arbitrary_bytes(data: &[u8]) {
    check_open(&store_image(data));
}

/// The file image for an `open_arbitrary_bytes` input. The first byte picks
/// the mode: even = the rest of the input is the file; odd = the rest
/// describes entries of a valid store (with correct checksums, which a
/// fuzzer cannot forge) followed by damage to apply to it.
pub fn store_image(data: &[u8]) -> Vec<u8> {
    match data.split_first() {
        None => Vec::new(),
        Some((mode, rest)) if mode & 1 == 0 => rest.to_vec(),
        Some((_, rest)) => damaged_store(rest),
    }
}

fn damaged_store(data: &[u8]) -> Vec<u8> {
    let mut input = Input::new(data);
    let store_id = input.u64();
    let mut file = Header { store_id }.encode().to_vec();
    let entries = input.byte() % 24;
    for i in 0..entries {
        let kind = input.byte();
        let key_len = 1 + usize::from(input.byte() % 3);
        let mut key = input.take(key_len).to_vec();
        key.resize(key_len, b'k');
        let flags = u16::from(kind & 3);
        let payload_len = match kind >> 4 {
            _ if flags & 1 != 0 => 0,
            0 => 0,
            1..=12 => usize::from(input.byte()),
            13 | 14 => usize::from(input.u16() % 5000),
            _ => 70_000,
        };
        let fill = input.byte();
        let payload: Vec<u8> = (0..payload_len)
            .map(|j| fill.wrapping_add((j as u8).wrapping_mul(31)) ^ i)
            .collect();
        let prev_end = file.len() as u64;
        let start = if payload_len == 0 {
            prev_end
        } else {
            align_up(prev_end).expect("small offsets")
        };
        file.resize(start as usize, 0);
        file.extend_from_slice(&payload);
        file.extend_from_slice(&key);
        let mut trailer = Trailer {
            prev_end,
            key_hash: mmblob::checksum::key_hash(&key),
            payload_len: payload_len as u64,
            key_len: key_len as u16,
            flags,
            crc: 0,
        };
        trailer.crc = trailer.compute_crc(store_id, &payload, &key);
        file.extend_from_slice(&trailer.encode());
    }
    // Damage: up to eight changes, each picked by one byte.
    for _ in 0..8 {
        if input.is_empty() || file.is_empty() {
            break;
        }
        let op = input.byte();
        let len = file.len();
        let at = usize::from(input.u16()) % len;
        match op % 5 {
            0 => file[at] ^= 1 << (op >> 5),
            1 => file.truncate(at),
            2 => {
                let n = usize::from(input.byte());
                file.extend_from_slice(input.take(n));
            }
            3 => {
                // Copy 32 bytes from elsewhere (a trailer lands where it does not belong).
                let from = usize::from(input.u16()) % len;
                let n = 32.min(len - at).min(len - from);
                file.copy_within(from..from + n, at);
            }
            _ => {
                let n = usize::from(input.byte() % 64).min(len - at);
                file[at..at + n].fill(0);
            }
        }
    }
    file
}

/// What a handle shows: every live key and its value.
fn snapshot(store: &DataStore) -> Model {
    let mut seen = Model::new();
    for entry in store.iter_entries() {
        assert!(!entry.key().is_empty(), "iteration yielded an empty key");
        let old = seen.insert(entry.key().to_vec(), entry.to_vec());
        assert!(old.is_none(), "iteration yielded a key twice");
    }
    assert_eq!(store.len(), seen.len(), "len() disagrees with iteration");
    for (key, value) in &seen {
        let read = store.read(key).expect("read a listed key");
        assert_eq!(
            read.as_deref(),
            Some(value.as_slice()),
            "read disagrees with iteration"
        );
        assert!(store.exists(key).expect("exists"));
    }
    seen
}

/// The errors a rejected file may produce; anything else is a bug.
fn assert_typed_rejection(err: &Error) {
    assert!(
        matches!(
            err,
            Error::NotAStore { .. } | Error::UnsupportedVersion { .. } | Error::Corrupt { .. }
        ),
        "unexpected error for a bad file: {err:?}"
    );
    let _ = err.to_string();
}

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read the store file")
}

/// Opens `image` read-only and writable and checks the contract:
/// no panic; a rejected file is left byte for byte as it was; a read-only
/// open never changes it; a writable open only cuts a torn tail; both views
/// agree; the store stays usable and keeps what it showed across a reopen.
pub fn check_open(image: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fuzz.mmblob");
    std::fs::write(&path, image).expect("write the image");

    let read_only = OpenOptions::new().read_only(true).open(&path);
    let ro_view = match &read_only {
        Ok(store) => {
            let view = snapshot(store);
            let _ = store.verify().expect("verify a read-only handle");
            let _ = store.refresh();
            Some(view)
        }
        Err(err) => {
            assert_typed_rejection(err);
            None
        }
    };
    drop(read_only);
    assert!(
        file_bytes(&path) == image,
        "a read-only open changed the file"
    );

    let store = match DataStore::open(&path) {
        Ok(store) => store,
        Err(err) => {
            assert_typed_rejection(&err);
            assert!(file_bytes(&path) == image, "a rejected file was changed");
            assert!(
                ro_view.is_none(),
                "read-only open accepted what writable open refused"
            );
            return;
        }
    };
    let ro_view = ro_view.expect("writable open accepted what read-only open refused");
    let after_open = file_bytes(&path);
    if image.is_empty() {
        assert_eq!(after_open.len(), 64, "an empty file becomes a bare header");
    } else {
        assert!(
            after_open.len() >= 64 && image.starts_with(&after_open),
            "open changed more than a torn tail: {} -> {} bytes",
            image.len(),
            after_open.len()
        );
    }
    let mut model = snapshot(&store);
    assert_eq!(model, ro_view, "read-only and writable handles disagree");
    let report = store.verify().expect("verify");
    for damage in store.damage() {
        let _ = damage.to_string();
    }
    // Verify hides the damaged entries it found (and their batches); they
    // stay hidden across the reopen below.
    if !report.is_ok() {
        model = snapshot(&store);
    }

    // The store takes new writes and keeps everything across a reopen.
    let key = b"\xfffuzz-new-key".to_vec();
    let end = store.write(&key, b"new value").expect("write after open");
    assert_eq!(store.file_size().expect("file size"), end);
    model.insert(key, b"new value".to_vec());
    assert_eq!(snapshot(&store), model);
    drop(store);
    let store = DataStore::open_existing(&path).expect("reopen");
    assert_eq!(snapshot(&store), model, "reopen lost or changed entries");
    let reverify = store.verify().expect("verify after reopen");
    assert_eq!(
        reverify.is_ok(),
        report.is_ok(),
        "appending changed whether damage is found"
    );
    drop(store);

    // strict(true) opens exactly the stores that verify finds undamaged.
    match OpenOptions::new().strict(true).open(&path) {
        Ok(_) => assert!(reverify.is_ok(), "strict open accepted a damaged store"),
        Err(Error::Corrupt { .. }) => {
            assert!(!reverify.is_ok(), "strict open refused a clean store")
        }
        Err(err) => panic!("strict open failed unexpectedly: {err:?}"),
    }

    // Compaction keeps exactly the live entries, and never gives a damaged
    // live value a fresh checksum nor drops a stretch open had to skip: it
    // refuses and changes nothing instead.
    let store = DataStore::open_existing(&path).expect("reopen to compact");
    let live_damaged = store.iter_entries().any(|entry| !entry.verify_checksum());
    // Stretches open had to skip may have held live entries: compaction
    // would drop them for good, so it refuses those too.
    let skipped = store
        .damage()
        .iter()
        .any(|d| d.kind == DamageKind::Unreadable);
    // So may entries hidden because they are damaged.
    let hidden = store
        .damaged_keys()
        .iter()
        .any(|(key, _)| !store.exists(key).expect("exists"));
    let before = file_bytes(&path);
    match store.compact() {
        Ok(_) => {
            assert!(!live_damaged, "compaction hid a damaged live value");
            assert!(!skipped, "compaction dropped bytes open could not read");
            assert!(!hidden, "compaction dropped hidden damaged entries");
            assert_eq!(snapshot(&store), model, "compaction changed the entries");
            assert!(
                store.verify().expect("verify").is_ok(),
                "damage after compaction"
            );
            drop(store);
            let store = DataStore::open_existing(&path).expect("reopen after compaction");
            assert_eq!(snapshot(&store), model, "reopen after compaction");
        }
        Err(Error::Corrupt { .. }) => {
            assert!(
                live_damaged || skipped || hidden,
                "compaction refused a store whose live values are intact"
            );
            assert!(
                file_bytes(&path) == before,
                "a refused compaction changed the file"
            );
            assert_eq!(
                snapshot(&store),
                model,
                "a refused compaction changed the entries"
            );
        }
        Err(err) => panic!("compaction failed unexpectedly: {err:?}"),
    }
}

// ---------------------------------------------------------------------------
// random_operations
// ---------------------------------------------------------------------------

/// A key from a small set (so keys collide and get overwritten), or a few
/// raw input bytes.
fn key(input: &mut Input<'_>) -> Vec<u8> {
    let b = input.byte();
    if b < 224 {
        format!("key-{}", b % 12).into_bytes()
    } else {
        let n = 1 + usize::from(b % 3);
        let mut key = input.take(n).to_vec();
        key.resize(n, 0);
        key
    }
}

/// A value: empty, short, a few pages, or past the writer's copy threshold.
fn value(input: &mut Input<'_>) -> Vec<u8> {
    let b = input.byte();
    let len = match b {
        0..=127 => usize::from(b % 40),
        128..=239 => usize::from(b - 128) * 20,
        240..=254 => 16 * 1024 + usize::from(b) * 7,
        255 => 70_000,
    };
    let fill = input.byte();
    (0..len)
        .map(|i| fill.wrapping_add((i as u8).wrapping_mul(7)))
        .collect()
}

fn assert_matches(store: &DataStore, model: &Model, when: &str) {
    assert_eq!(store.len(), model.len(), "{when}: len");
    for (key, value) in model {
        let read = store.read(key).expect("read");
        assert_eq!(
            read.as_deref(),
            Some(value.as_slice()),
            "{when}: value of {:?}",
            mmblob::display_key(key)
        );
    }
    let listed: Vec<Vec<u8>> = {
        let mut keys: Vec<Vec<u8>> = store.keys().collect();
        keys.sort();
        keys
    };
    let expected: Vec<Vec<u8>> = model.keys().cloned().collect();
    assert_eq!(listed, expected, "{when}: keys");
}

/// A reader that returns a value a few bytes at a time.
struct Trickle<'a>(&'a [u8], usize);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(buf.len()).min(self.1);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// Fuzz target `random_operations`: decodes the input into writes, batches,
/// deletes, mixed batches of writes and deletes, renames, streams, reopens,
/// compactions, torn tails and garbage appended after the tail, and compares
/// the store with a map after each.
pub fn random_operations(data: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ops.mmblob");
    let mut store = DataStore::open(&path).expect("create");
    let mut model = Model::new();
    // The file end and the model after each committed operation since the
    // last compaction: a torn tail must bring back one of these states.
    let mut history: Vec<(u64, Model)> = vec![(64, Model::new())];
    let mut input = Input::new(data);
    let mut ops = 0;
    while !input.is_empty() && ops < 48 {
        ops += 1;
        let before = store.file_size().expect("file size");
        match input.byte() % 13 {
            0 | 1 => {
                let (k, v) = (key(&mut input), value(&mut input));
                store.write(&k, &v).expect("write");
                model.insert(k, v);
            }
            2 => {
                let n = 1 + input.byte() % 5;
                let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
                    .map(|_| (key(&mut input), value(&mut input)))
                    .collect();
                let refs: Vec<(&[u8], &[u8])> = entries
                    .iter()
                    .map(|(k, v)| (k.as_slice(), v.as_slice()))
                    .collect();
                store.batch_write(&refs).expect("batch write");
                model.extend(entries);
            }
            3 => {
                let k = key(&mut input);
                let existed = store.delete(&k).expect("delete");
                assert_eq!(existed, model.remove(&k).is_some(), "delete result");
            }
            4 if input.peek().is_some_and(|b| b & 0x80 != 0) => {
                // One `WriteBatch` mixing writes and deletes.
                let n = 1 + input.byte() % 8;
                let mut batch = store.batch();
                let (mut written, mut deleted) = (0, 0);
                for _ in 0..n {
                    if input.byte().is_multiple_of(2) {
                        let (k, v) = (key(&mut input), value(&mut input));
                        batch.write(k.clone(), v.clone());
                        model.insert(k, v);
                        written += 1;
                    } else {
                        let k = key(&mut input);
                        deleted += usize::from(model.remove(&k).is_some());
                        batch.delete(k);
                    }
                }
                let done = batch.commit().expect("mixed batch");
                assert_eq!(
                    (done.written, done.deleted),
                    (written, deleted),
                    "mixed batch"
                );
            }
            4 => {
                let n = 1 + input.byte() % 4;
                let keys: Vec<Vec<u8>> = (0..n).map(|_| key(&mut input)).collect();
                let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
                let deleted = store.batch_delete(&refs).expect("batch delete");
                let expected = keys
                    .iter()
                    .filter(|k| model.remove(k.as_slice()).is_some())
                    .count();
                assert_eq!(deleted, expected, "batch delete count");
            }
            5 => {
                let (k, v) = (key(&mut input), value(&mut input));
                let chunk = 1 + usize::from(input.byte());
                store
                    .write_stream(&k, &mut Trickle(&v, chunk))
                    .expect("write stream");
                model.insert(k, v);
            }
            6 => {
                let (old, new) = (key(&mut input), key(&mut input));
                match (store.rename(&old, &new), model.remove(&old)) {
                    (Ok(()), Some(v)) => {
                        model.insert(new, v);
                    }
                    (Err(e), None) => assert!(e.is_not_found(), "rename error: {e:?}"),
                    (got, had) => {
                        panic!("rename gave {got:?} with value present: {}", had.is_some())
                    }
                }
            }
            7 => {
                drop(store);
                store = DataStore::open_existing(&path).expect("reopen");
                assert_matches(&store, &model, "after reopen");
            }
            8 => {
                store.compact().expect("compact");
                assert_matches(&store, &model, "after compaction");
                let tail = store.file_size().expect("file size");
                history = vec![(tail, model.clone())];
                continue;
            }
            9 => {
                // A torn tail: cut the file somewhere after the oldest state
                // we know and expect the newest state that fits.
                let cut = u64::from(input.u16());
                drop(store);
                let floor = history[0].0;
                let new_len = before - cut % (before - floor + 1);
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .expect("open file to cut");
                file.set_len(new_len).expect("cut");
                drop(file);
                // A torn write comes with a crash, which leaves no index
                // sidecar recording the end being cut (a cut below what the
                // last clean close recorded is a truncation, and is reported
                // as damage: tests/truncated_store_is_reported.rs).
                let mut sidecar = path.as_os_str().to_owned();
                sidecar.push(".index");
                let _ = std::fs::remove_file(sidecar);
                store = DataStore::open_existing(&path).expect("reopen after cut");
                while history.last().expect("history").0 > new_len {
                    history.pop();
                }
                let (end, kept) = history.last().expect("history").clone();
                model = kept;
                assert_eq!(store.file_size().expect("file size"), end, "tail after cut");
                assert_matches(&store, &model, "after a torn tail");
                continue;
            }
            10 => {
                // Garbage after the tail (a write torn before its trailer).
                let n = 1 + usize::from(input.byte() % 96);
                let junk = input.take(n).to_vec();
                drop(store);
                let mut bytes = file_bytes(&path);
                bytes.extend_from_slice(&junk);
                std::fs::write(&path, &bytes).expect("append junk");
                store = DataStore::open_existing(&path).expect("reopen after junk");
                assert_eq!(store.file_size().expect("file size"), before, "junk cut");
                assert_matches(&store, &model, "after junk");
                continue;
            }
            11 => {
                // One flipped bit costs at most the entry it hits (or, in
                // the last entry, the last operation: a torn tail). Then the
                // bit is flipped back and everything must be as before.
                let (at, bit) = (usize::from(input.u16()), input.byte() % 8);
                drop(store);
                let mut bytes = file_bytes(&path);
                if bytes.len() > 64 {
                    let offset = 64 + at % (bytes.len() - 64);
                    bytes[offset] ^= 1 << bit;
                    std::fs::write(&path, &bytes).expect("write the damaged copy");
                    let damaged = OpenOptions::new()
                        .read_only(true)
                        .open(&path)
                        .expect("open a store with a flipped bit");
                    let view = snapshot(&damaged);
                    let differ = model
                        .iter()
                        .filter(|(k, v)| view.get(*k) != Some(*v))
                        .count()
                        + view.keys().filter(|k| !model.contains_key(*k)).count();
                    // A flip in the last batch hides the whole batch: the
                    // view is the state before it, less the batch's keys.
                    let hidden: std::collections::BTreeSet<Vec<u8>> =
                        damaged.damaged_keys().into_iter().map(|(k, _)| k).collect();
                    let without_hidden = |m: &Model| -> Model {
                        m.iter()
                            .filter(|(k, _)| !hidden.contains(*k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    };
                    let before_last = history
                        .len()
                        .checked_sub(2)
                        .map(|i| without_hidden(&history[i].1));
                    assert!(
                        differ <= 1 || before_last == Some(without_hidden(&view)),
                        "a flipped bit at {offset} changed {differ} keys"
                    );
                    let _ = damaged.verify().expect("verify a damaged store");
                    drop(damaged);
                    bytes[offset] ^= 1 << bit;
                    std::fs::write(&path, &bytes).expect("repair the copy");
                }
                store = DataStore::open_existing(&path).expect("reopen after repair");
                assert_matches(&store, &model, "after repairing a flipped bit");
                continue;
            }
            _ => {
                // A read-only handle sees the store, and new writes after
                // refresh, also when the writer compacted in between; its
                // handles from before stay intact.
                let reader = OpenOptions::new()
                    .read_only(true)
                    .open(&path)
                    .expect("read-only open");
                assert_matches(&reader, &model, "read-only handle");
                let held: Vec<_> = reader.iter_entries().take(3).collect();
                let held_bytes: Vec<Vec<u8>> = held.iter().map(|h| h.to_vec()).collect();
                let compact = input.byte().is_multiple_of(3);
                if compact {
                    store.compact().expect("compact");
                }
                let (k, v) = (key(&mut input), value(&mut input));
                store.write(&k, &v).expect("write");
                model.insert(k, v);
                reader.refresh().expect("refresh");
                assert_matches(&reader, &model, "read-only handle after refresh");
                for (handle, bytes) in held.iter().zip(&held_bytes) {
                    assert!(
                        **handle == **bytes && handle.verify_checksum(),
                        "held handle"
                    );
                }
                if compact {
                    let tail = store.file_size().expect("file size");
                    history = vec![(tail, model.clone())];
                    continue;
                }
            }
        }
        let end = store.file_size().expect("file size");
        if end != before {
            history.push((end, model.clone()));
        }
        assert_eq!(store.len(), model.len(), "len after operation {ops}");
    }
    assert_matches(&store, &model, "at the end");
    assert!(
        store.verify().expect("verify").is_ok(),
        "damage without damage"
    );
    drop(store);
    let store = DataStore::open_existing(&path).expect("final reopen");
    assert_matches(&store, &model, "after the final reopen");
}
