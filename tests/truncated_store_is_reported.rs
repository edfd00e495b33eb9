//! A store file cut short after a clean close (an interrupted copy, a
//! truncation) is reported, not silently shrunk: the index sidecar records
//! how far the store reached, so open says "the file ends at X; the store
//! reached Y" as damage, `verify()` is not ok, `strict(true)` refuses, and a
//! read-only open leaves the file alone and never says it is cutting
//! anything. Bytes of a torn write are reported too (cut or ignored).

use std::cell::RefCell;
use std::path::Path;
use std::sync::Once;

use mmblob::{DamageKind, DataStore, Error, OpenOptions};

thread_local! {
    static MESSAGES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Keeps the text of every event on the thread that emitted it.
struct Messages;

struct Text<'a>(&'a mut String);

impl tracing::field::Visit for Text<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Messages {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = format!("{} ", event.metadata().level());
        event.record(&mut Text(&mut text));
        MESSAGES.with(|m| m.borrow_mut().push(text));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// The events emitted on this thread by `f`.
fn events_of<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = tracing::subscriber::set_global_default(Messages);
    });
    MESSAGES.with(|m| m.borrow_mut().clear());
    let out = f();
    (out, MESSAGES.with(|m| m.borrow_mut().split_off(0)))
}

/// A store of `keys` keys written in batches of 500, closed cleanly.
fn build(path: &Path, keys: u32) -> u64 {
    let store = DataStore::open(path).expect("create");
    let all: Vec<(Vec<u8>, Vec<u8>)> = (0..keys)
        .map(|i| {
            (
                format!("key-{i}").into_bytes(),
                vec![i as u8; 40 + i as usize % 50],
            )
        })
        .collect();
    for chunk in all.chunks(500) {
        let refs: Vec<(&[u8], &[u8])> = chunk
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        store.batch_write(&refs).expect("batch");
    }
    let len = store.file_size().expect("size");
    drop(store);
    len
}

fn truncation(store: &DataStore) -> Option<(std::ops::Range<u64>, u64)> {
    store.damage().into_iter().find_map(|d| match d.kind {
        DamageKind::Truncated { keys_then, .. } => Some((d.range, keys_then)),
        _ => None,
    })
}

fn check_truncated_store_is_reported(keys: u32) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    let reached = build(&path, keys);
    let half = reached / 2 + 7; // mid-entry: a torn piece remains
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(half))
        .expect("truncate");
    let cut = std::fs::read(&path).expect("read");

    // Read-only: reported, nothing changed, never "cutting".
    let (store, events) = events_of(|| {
        OpenOptions::new()
            .read_only(true)
            .open(&path)
            .expect("open")
    });
    let (range, keys_then) = truncation(&store).expect("the truncation is reported");
    assert_eq!(range.end, reached, "it names how far the store reached");
    assert!(range.start <= half);
    assert_eq!(keys_then, u64::from(keys));
    let text = store
        .damage()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains(&format!("the file ends at {}", range.start))
            && text.contains(&format!("reached {reached}")),
        "{text}"
    );
    assert!(store.stats().torn_bytes > 0, "the torn piece is counted");
    assert!(store.stats().damaged > 0);
    assert!(
        events.iter().any(|e| e.starts_with("ERROR")),
        "an error! event: {events:?}"
    );
    assert!(
        !events.iter().any(|e| e.contains("cutting")),
        "a read-only open talked about cutting: {events:?}"
    );
    assert!(!store.verify().expect("verify").is_ok());
    assert!(store.len() < keys as usize);
    drop(store);
    assert!(
        std::fs::read(&path).expect("read") == cut,
        "read-only open changed the file"
    );

    // Strict refuses and changes nothing.
    assert!(matches!(
        OpenOptions::new().strict(true).open(&path),
        Err(Error::Corrupt { .. })
    ));
    assert!(
        std::fs::read(&path).expect("read") == cut,
        "strict open changed the file"
    );

    // A writable open reports it too, cuts only the torn piece, and the
    // report survives a reopen (the sidecar's record is kept).
    let store = DataStore::open(&path).expect("open");
    assert!(truncation(&store).is_some());
    let tail = store.file_size().expect("size");
    // Back to the end of the last whole batch before the cut.
    assert!(tail <= half && tail > half - 100_000);
    store.write(b"new", b"after the truncation").expect("write");
    drop(store);
    let store = DataStore::open(&path).expect("reopen");
    assert!(
        truncation(&store).is_some(),
        "the truncation is forgotten after one writable open"
    );
}

#[test]
fn a_small_truncated_store_is_reported() {
    check_truncated_store_is_reported(8_000);
}

#[test]
fn a_large_truncated_store_is_reported() {
    check_truncated_store_is_reported(12_000);
}

#[test]
fn a_torn_write_is_reported_as_torn_bytes_not_truncation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("s.mmblob");
    let len = build(&path, 300);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.extend_from_slice(&[0xa5; 123]);
    std::fs::write(&path, &bytes).expect("append a torn write");

    let (store, events) = events_of(|| {
        OpenOptions::new()
            .read_only(true)
            .open(&path)
            .expect("open")
    });
    assert!(truncation(&store).is_none());
    let torn: Vec<_> = store
        .damage()
        .into_iter()
        .filter(|d| d.is_torn_tail())
        .collect();
    assert_eq!(torn.len(), 1, "{:?}", store.damage());
    assert_eq!(torn[0].range, len..len + 123);
    assert_eq!(torn[0].kind, DamageKind::TornTail { cut: false });
    assert_eq!(store.stats().torn_bytes, 123);
    assert_eq!(store.stats().damaged, 0);
    assert!(!events.iter().any(|e| e.contains("cutting")), "{events:?}");
    assert!(events.iter().any(|e| e.contains("ignoring")), "{events:?}");
    let report = store.verify().expect("verify");
    assert!(report.is_ok(), "a torn write is not damage");
    assert_eq!(report.torn_bytes(), 123);
    drop(store);
    assert_eq!(std::fs::metadata(&path).expect("meta").len(), len + 123);

    let (store, events) = events_of(|| DataStore::open(&path).expect("open"));
    assert!(events.iter().any(|e| e.contains("cutting")), "{events:?}");
    assert_eq!(
        store
            .damage()
            .iter()
            .find(|d| d.is_torn_tail())
            .map(|d| d.kind.clone()),
        Some(DamageKind::TornTail { cut: true })
    );
    assert_eq!(store.file_size().expect("size"), len);
    assert_eq!(store.len(), 300);
}
