//! One writer per store, across threads and processes.
//!
//! While a writable handle is open, a second writable open fails fast with
//! `Error::Locked` naming the path, in the same process and in another one;
//! read-only handles open and read meanwhile. Dropping the writer releases
//! the lock even while `EntryHandle`s taken from it are still alive.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use mmblob::{DataStore, Error, OpenOptions};
use support::child;

fn assert_locked(result: mmblob::Result<DataStore>, path: &Path) {
    match result {
        Err(Error::Locked { path: locked }) => {
            assert_eq!(locked, path, "the error names the store");
            let message = Error::Locked { path: locked }.to_string();
            assert!(message.contains(&*path.to_string_lossy()), "{message}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
}

/// The child: tries to open the store for writing and reading, reports
/// what happened, then (when told) tries again.
#[test]
fn child_tries_to_open() {
    if child::role().as_deref() != Some("second-writer") {
        return;
    }
    let path = child::store_path();
    loop {
        let started = Instant::now();
        let writable = DataStore::open(&path);
        let took = started.elapsed();
        let outcome = match &writable {
            Err(Error::Locked { path: locked }) if *locked == path => "locked".to_owned(),
            Err(e) => format!("error {e}"),
            Ok(store) => {
                store.write(b"from-child", b"hello").expect("child write");
                "opened".to_owned()
            }
        };
        assert!(
            took < Duration::from_secs(2),
            "a locked open must fail fast"
        );
        drop(writable);
        let reader = OpenOptions::new()
            .read_only(true)
            .open(&path)
            .expect("read-only open while locked");
        let seen = reader
            .read(b"from-parent")
            .expect("read")
            .map(|e| String::from_utf8_lossy(&e).into_owned());
        child::say(&format!("{outcome} read={}", seen.unwrap_or_default()));
        if child::wait_for_parent() != "again" {
            return;
        }
    }
}

#[test]
fn second_writer_in_this_process_is_locked_out() {
    if child::role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("locked.mmblob");
    let writer = DataStore::open(&path).expect("first writer");
    writer.write(b"k", b"v").expect("write");

    assert_locked(DataStore::open(&path), &path);
    assert_locked(DataStore::open_existing(&path), &path);
    // Another thread is no different.
    let p = path.clone();
    let from_thread = std::thread::spawn(move || DataStore::open(&p).map(drop))
        .join()
        .expect("thread");
    assert!(
        matches!(from_thread, Err(Error::Locked { .. })),
        "{from_thread:?}"
    );

    let reader = OpenOptions::new()
        .read_only(true)
        .open(&path)
        .expect("read-only open while a writer holds the lock");
    assert_eq!(reader.read(b"k").expect("read").as_deref(), Some(&b"v"[..]));

    // Handles outlive the writer, and the lock does not outlive it.
    let handle = writer.read(b"k").expect("read").expect("present");
    let iterated: Vec<_> = writer.iter_entries().collect();
    drop(writer);
    let second = DataStore::open(&path).expect("the lock is released on drop");
    assert_eq!(&*handle, b"v");
    assert_eq!(iterated.len(), 1);
    second.write(b"k2", b"v2").expect("the new writer writes");
    assert_locked(DataStore::open(&path), &path);
    drop(second);
    drop(reader);
    DataStore::open(&path).expect("open after every handle is gone");
}

#[test]
fn second_writer_in_another_process_is_locked_out() {
    if child::role().is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("locked.mmblob");
    let writer = DataStore::open(&path).expect("first writer");
    writer
        .write(b"from-parent", b"parent value")
        .expect("write");

    let mut other = child::spawn("child_tries_to_open", "second-writer", &path, 0);
    assert_eq!(
        other.expect_event("the child's first attempt"),
        "locked read=parent value"
    );

    // Still locked while a handle from the writer lives; released on drop.
    let handle = writer.read(b"from-parent").expect("read").expect("present");
    drop(writer);
    other.tell("again");
    assert_eq!(
        other.expect_event("the child's second attempt"),
        "opened read=parent value"
    );
    assert_eq!(&*handle, b"parent value");
    other.tell("stop");
    other.wait_success();

    let store = DataStore::open(&path).expect("reopen");
    assert_eq!(
        store.read(b"from-child").expect("read").as_deref(),
        Some(&b"hello"[..])
    );
}
