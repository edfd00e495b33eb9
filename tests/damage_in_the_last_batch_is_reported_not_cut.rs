//! A flipped byte in the last entry, or in any entry of the last batch, is
//! damage, not a torn write: the bytes stay, the damage is reported
//! (`damage()`, `verify()`, an `error!` event), the whole batch is hidden
//! (a read of its keys fails with `Error::Corrupt`, never an older value or
//! "not found"), and later writes append after it.

use std::cell::Cell;
use std::path::Path;
use std::sync::Once;

use mmblob::{DamageKind, DataStore, Error, OpenOptions};

thread_local! {
    static ERRORS: Cell<usize> = const { Cell::new(0) };
}

/// Counts the `error!` events of each thread; installed as the global
/// subscriber so that no test's events escape it.
struct ErrorEvents;

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
            ERRORS.with(|n| n.set(n.get() + 1));
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// `error!` events emitted on this thread so far.
fn errors_on_this_thread() -> usize {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = tracing::subscriber::set_global_default(ErrorEvents);
    });
    ERRORS.with(Cell::get)
}

const BATCH: usize = 200;

fn key(i: usize) -> Vec<u8> {
    format!("file-{i:03}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    vec![i as u8; 1000 + i]
}

/// Ten single writes (`old-0..9`, and `file-000` with an older value), then
/// one batch of 200 entries, like an import. Returns the end offsets of
/// the batch entries.
fn build(path: &Path) -> Vec<u64> {
    let store = DataStore::open(path).expect("create");
    for i in 0..10u8 {
        store
            .write(format!("old-{i}").as_bytes(), &[i; 100])
            .expect("write");
    }
    store.write(&key(0), b"an older value").expect("write");
    let before = store.file_size().expect("size");
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..BATCH).map(|i| (key(i), value(i))).collect();
    let refs: Vec<(&[u8], &[u8])> = entries
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    store.batch_write(&refs).expect("batch");
    drop(store);
    // End offsets of the batch entries, from their trailers.
    let bytes = std::fs::read(path).expect("read");
    let mut ends = Vec::new();
    let mut end = bytes.len() as u64;
    while end > before {
        ends.push(end);
        let at = end as usize - 32;
        end = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    }
    ends.reverse();
    assert_eq!(ends.len(), BATCH);
    ends
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset as usize] ^= 0x04;
    std::fs::write(path, &bytes).expect("write");
}

fn assert_batch_hidden(store: &DataStore, what: &str) {
    for i in 0..BATCH {
        match store.read(&key(i)) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("{what}: read of batch key {i} gave {other:?}"),
        }
    }
    for i in 0..10u8 {
        let got = store
            .read(format!("old-{i}").as_bytes())
            .expect("read")
            .expect("entries before the batch survive");
        assert_eq!(&*got, &[i; 100]);
    }
    assert_eq!(
        store.len(),
        10,
        "{what}: only the entries before the batch are listed"
    );
}

#[test]
fn a_flipped_byte_in_the_last_file_of_an_import_keeps_every_byte_and_is_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    let ends = build(&path);
    let len = std::fs::metadata(&path).expect("meta").len();
    // A byte in the value of the last file of the batch.
    flip(&path, ends[BATCH - 1] - 32 - 8 - 500);

    let errors_before = errors_on_this_thread();
    let store = DataStore::open(&path).expect("open");
    assert!(errors_on_this_thread() > errors_before, "no error! event");
    assert_eq!(
        std::fs::metadata(&path).expect("meta").len(),
        len,
        "bytes were cut"
    );
    let damage = store.damage();
    assert!(
        damage.iter().any(|d| matches!(&d.kind,
            DamageKind::ChecksumMismatch { key: k, .. } if *k == key(BATCH - 1))),
        "the damaged entry is named: {damage:?}"
    );
    assert!(
        damage.iter().any(|d| matches!(&d.kind,
            DamageKind::IncompleteBatch { keys } if keys.len() == BATCH - 1)),
        "the intact entries of the batch are reported hidden: {damage:?}"
    );
    assert_batch_hidden(&store, "after open");
    assert!(!store.verify().expect("verify").is_ok());

    // Later writes go after the damaged batch; nothing before it moves.
    let end = store.write(b"after", b"the damage").expect("write");
    assert!(end > len);
    drop(store);
    assert!(std::fs::metadata(&path).expect("meta").len() > len);

    // Now the damage is in the middle: verify finds it and hides the batch.
    let store = DataStore::open(&path).expect("reopen");
    let report = store.verify().expect("verify");
    assert!(!report.is_ok());
    assert_eq!(
        &*store.read(b"after").expect("read").expect("present"),
        b"the damage"
    );
    for i in 0..BATCH {
        assert!(
            matches!(store.read(&key(i)), Err(Error::Corrupt { .. })),
            "after reopen and verify, batch key {i} is readable"
        );
    }
    assert!(matches!(
        OpenOptions::new().strict(true).open(&path),
        Err(Error::Corrupt { .. }) | Err(Error::Locked { .. })
    ));
}

#[test]
fn damage_in_a_middle_entry_of_the_last_batch_hides_the_whole_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    let ends = build(&path);
    let len = std::fs::metadata(&path).expect("meta").len();
    flip(&path, ends[BATCH / 2] - 32 - 8 - 10);
    for read_only in [true, false] {
        let store = OpenOptions::new()
            .read_only(read_only)
            .open(&path)
            .expect("open");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), len);
        assert_batch_hidden(&store, if read_only { "read-only" } else { "writable" });
        assert!(
            store.damage().iter().any(|d| matches!(&d.kind,
                DamageKind::ChecksumMismatch { key: k, .. } if *k == key(BATCH / 2))),
            "{:?}",
            store.damage()
        );
    }
}

#[test]
fn a_damaged_last_write_is_an_error_to_read_not_its_older_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    {
        let store = DataStore::open(&path).expect("create");
        store.write(b"a", b"first").expect("write");
        store.write(b"k", b"old value").expect("write");
        store.write(b"k", &[9u8; 300]).expect("write");
    }
    let len = std::fs::metadata(&path).expect("meta").len();
    flip(&path, len - 32 - 1 - 100);
    let store = DataStore::open(&path).expect("open");
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), len);
    for result in [
        store.read(b"k").map(|h| h.map(|h| h.to_vec())),
        store.read_with(b"k", <[u8]>::to_vec),
        store.reader().get(b"k").map(|v| v.map(<[u8]>::to_vec)),
        store
            .batch_read(&[b"a".as_slice(), b"k"])
            .map(|mut v| v.pop().flatten().map(|h| h.to_vec())),
    ] {
        match result {
            Err(err @ Error::Corrupt { .. }) => {
                assert!(err.to_string().contains("\"k\"") || err.to_string().contains('k'));
            }
            other => panic!("read of the damaged key gave {other:?}"),
        }
    }
    assert_eq!(store.damaged_keys().len(), 1);
    assert_eq!(store.damaged_keys()[0].0, b"k");
    assert_eq!(
        &*store.read(b"a").expect("read").expect("present"),
        b"first"
    );
    // Writing the key again makes it readable.
    store.write(b"k", b"new").expect("write");
    assert_eq!(&*store.read(b"k").expect("read").expect("present"), b"new");
    assert!(store.damaged_keys().is_empty());
    assert!(store.delete(b"k").expect("delete"));
    assert!(store.read(b"k").expect("read").is_none());
}

#[test]
fn a_damaged_key_can_be_deleted_and_a_deleted_one_is_not_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    let damaged_end = {
        let store = DataStore::open(&path).expect("create");
        store.write(b"gone", &[1u8; 200]).expect("write");
        let end = store.write(b"k", &[2u8; 200]).expect("write");
        store.write(b"other", b"x").expect("write");
        store.delete(b"gone").expect("delete");
        end
    };
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[damaged_end as usize - 32 - 1 - 50] ^= 0x02; // the value of "k"
    bytes[130] ^= 0x02; // the value of "gone", deleted since
    std::fs::write(&path, &bytes).expect("damage");

    let store = DataStore::open(&path).expect("open");
    let report = store.verify().expect("verify");
    assert_eq!(report.committed_damage().count(), 2, "{report:?}");
    // A damaged value that was deleted afterwards stays deleted.
    assert!(store.read(b"gone").expect("read").is_none());
    assert!(matches!(store.read(b"k"), Err(Error::Corrupt { .. })));
    assert_eq!(store.damaged_keys().len(), 1);
    // Compaction refuses to drop the hidden key; deleting it is a way out.
    assert!(matches!(store.compact(), Err(Error::Corrupt { .. })));
    assert!(
        store.delete(b"k").expect("delete"),
        "the hidden key existed"
    );
    assert!(store.read(b"k").expect("read").is_none());
    assert!(store.damaged_keys().is_empty());
    store
        .compact()
        .expect("compaction after the damaged key was deleted");
    assert!(store.verify().expect("verify").is_ok());
    assert_eq!(
        &*store.read(b"other").expect("read").expect("present"),
        b"x"
    );
}
