//! The core API round-trips values through writes, reopen and iteration.

use std::collections::HashSet;

use mmblob::{DataStore, Error};
use rayon::prelude::*;

fn temp_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.mmblob");
    (dir, path)
}

#[test]
fn write_read_overwrite_delete_and_reopen() {
    let (_dir, path) = temp_store();
    let store = DataStore::open(&path).expect("open");
    assert!(store.is_empty());
    let end = store.write(b"k1", b"one").expect("write");
    assert_eq!(store.file_size().expect("size"), end);
    store.write(b"k2", b"two").expect("write");
    store.write(b"k1", b"uno").expect("overwrite");
    assert_eq!(
        store.read(b"k1").expect("read").as_deref(),
        Some(&b"uno"[..])
    );
    assert_eq!(store.len(), 2);
    assert!(store.delete(b"k2").expect("delete"));
    assert!(!store.delete(b"k2").expect("second delete"));
    assert!(!store.exists(b"k2").expect("exists"));
    let size = store.file_size().expect("size");
    assert!(!store.delete(b"missing").expect("delete missing"));
    assert_eq!(
        store.file_size().expect("size"),
        size,
        "deleting a missing key writes nothing"
    );
    drop(store);

    let store = DataStore::open_existing(&path).expect("reopen");
    assert_eq!(store.len(), 1);
    assert_eq!(
        store.read(b"k1").expect("read").as_deref(),
        Some(&b"uno"[..])
    );
    assert_eq!(store.read(b"k2").expect("read"), None);
}

#[test]
fn empty_values_and_a_single_zero_byte_are_ordinary_values() {
    let (_dir, path) = temp_store();
    let store = DataStore::open(&path).expect("open");
    store.write(b"empty", b"").expect("write empty");
    store.write(b"zero", &[0]).expect("write zero");
    drop(store);
    let store = DataStore::open(&path).expect("reopen");
    let empty = store.read(b"empty").expect("read").expect("present");
    assert!(empty.is_empty());
    assert_eq!(empty.as_typed::<u64>().expect("empty typed view").len(), 0);
    assert_eq!(&*store.read(b"zero").expect("read").expect("present"), &[0]);
    assert_eq!(store.len(), 2);
}

#[test]
fn keys_must_be_1_to_65535_bytes() {
    let (_dir, path) = temp_store();
    let store = DataStore::open(&path).expect("open");
    assert!(matches!(
        store.write(b"", b"v"),
        Err(Error::InvalidKey { len: 0 })
    ));
    let long = vec![b'k'; 65_536];
    assert!(matches!(
        store.write(&long, b"v"),
        Err(Error::InvalidKey { len: 65_536 })
    ));
    assert!(matches!(store.read(b""), Err(Error::InvalidKey { .. })));
    let longest = vec![b'k'; 65_535];
    store.write(&longest, b"v").expect("longest key");
    drop(store);
    let store = DataStore::open(&path).expect("reopen");
    assert_eq!(
        &*store.read(&longest).expect("read").expect("present"),
        b"v"
    );
}

#[test]
fn payloads_are_64_byte_aligned_and_zero_copy() {
    let (_dir, path) = temp_store();
    let store = DataStore::open(&path).expect("open");
    for i in 0..50u32 {
        let value = vec![i as u8; i as usize * 7 + 1];
        store
            .write(format!("key{i}").as_bytes(), &value)
            .expect("write");
    }
    for i in 0..50u32 {
        let a = store
            .read(format!("key{i}").as_bytes())
            .expect("read")
            .expect("present");
        let b = store
            .read(format!("key{i}").as_bytes())
            .expect("read")
            .expect("present");
        assert_eq!(a.as_ptr(), b.as_ptr(), "two reads return the same address");
        assert_eq!(a.as_ptr() as usize % 64, 0, "payload aligned in memory");
        assert_eq!(
            a.offset_range().start % 64,
            0,
            "payload aligned in the file"
        );
    }
}

#[test]
fn typed_views_check_length() {
    let (_dir, path) = temp_store();
    let store = DataStore::open(&path).expect("open");
    let floats: Vec<f32> = (0..100).map(|i| i as f32 * 0.5).collect();
    store
        .write(b"f", bytemuck::cast_slice(&floats))
        .expect("write");
    store.write(b"odd", &[1, 2, 3]).expect("write");
    let f = store.read(b"f").expect("read").expect("present");
    assert_eq!(f.as_typed::<f32>().expect("view"), floats.as_slice());
    let odd = store.read(b"odd").expect("read").expect("present");
    assert!(matches!(
        odd.as_typed::<u16>(),
        Err(Error::TypedView {
            len: 3,
            size: 2,
            ..
        })
    ));
}

#[test]
fn handles_survive_remaps_and_the_store_being_dropped() {
    let (_dir, path) = temp_store();
    let store = DataStore::open(&path).expect("open");
    store.write(b"first", b"kept bytes").expect("write");
    let handle = store.read(b"first").expect("read").expect("present");
    let before = handle.as_ptr();
    // Write far more than the initial 64 MiB map reservation to force re-maps.
    let big = vec![7u8; 8 << 20];
    for i in 0..12 {
        store
            .write(format!("big{i}").as_bytes(), &big)
            .expect("write big");
    }
    assert_eq!(&*handle, b"kept bytes");
    assert_eq!(handle.as_ptr(), before);
    drop(store);
    assert_eq!(&*handle, b"kept bytes");
    assert!(handle.verify_checksum());
}

#[test]
fn batch_write_last_write_of_a_key_wins_and_empty_batch_is_a_no_op() {
    let (_dir, path) = temp_store();
    let store = DataStore::open(&path).expect("open");
    let size = store.file_size().expect("size");
    assert_eq!(store.batch_write(&[]).expect("empty batch"), size);
    store
        .batch_write(&[(b"a", b"1"), (b"b", b"2"), (b"a", b"3")])
        .expect("batch");
    assert_eq!(&*store.read(b"a").expect("read").expect("present"), b"3");
    drop(store);
    let store = DataStore::open(&path).expect("reopen");
    assert_eq!(&*store.read(b"a").expect("read").expect("present"), b"3");
    assert_eq!(store.len(), 2);
    assert_eq!(
        store
            .batch_delete(&[b"a", b"a", b"zz", b"b"])
            .expect("batch delete"),
        2
    );
    assert!(store.is_empty());
}

#[test]
fn batch_read_answers_like_one_read_per_key() {
    let (_dir, path) = temp_store();
    let store = DataStore::open(&path).expect("open");
    let key = |i: u32| format!("key-{i}").into_bytes();
    for i in 0..300 {
        store
            .write(&key(i), &i.to_le_bytes().repeat(1 + i as usize % 20))
            .expect("write");
    }
    for i in (0..300).step_by(7) {
        store.write(&key(i), b"rewritten").expect("overwrite");
    }
    for i in (0..300).step_by(11) {
        store.delete(&key(i)).expect("delete");
    }
    // Present, rewritten, deleted, never written and repeated keys, more
    // than one prefetch window of them.
    let wanted: Vec<Vec<u8>> = (0..400).rev().chain([5, 5, 7]).map(key).collect();
    let keys: Vec<&[u8]> = wanted.iter().map(Vec::as_slice).collect();
    let batch = store.batch_read(&keys).expect("batch read");
    assert_eq!(batch.len(), keys.len());
    for (key, got) in keys.iter().zip(&batch) {
        let one = store.read(key).expect("read");
        assert_eq!(
            got.as_deref(),
            one.as_deref(),
            "key {}",
            String::from_utf8_lossy(key)
        );
    }
    assert!(batch.iter().filter(|h| h.is_none()).count() > 100);
    assert!(store.batch_read(&[]).expect("empty batch").is_empty());
    let with_empty_key: [&[u8]; 2] = [b"key-1", b""];
    assert!(matches!(
        store.batch_read(&with_empty_key),
        Err(Error::InvalidKey { len: 0 })
    ));
}

#[test]
fn iteration_sequential_and_parallel_agree() {
    let (_dir, path) = temp_store();
    let store = DataStore::open(&path).expect("open");
    for i in 0..2_000u32 {
        store
            .write(&i.to_le_bytes(), &(i ^ 0xA5A5).to_le_bytes())
            .expect("write");
    }
    for i in (0..2_000u32).step_by(3) {
        store.delete(&i.to_le_bytes()).expect("delete");
    }
    for i in (0..2_000u32).step_by(5) {
        store.write(&i.to_le_bytes(), b"new").expect("overwrite");
    }
    let seq: Vec<(Vec<u8>, Vec<u8>)> = store
        .iter_entries()
        .map(|e| (e.key().to_vec(), e.to_vec()))
        .collect();
    let par: HashSet<(Vec<u8>, Vec<u8>)> = store
        .par_iter_entries()
        .map(|e| (e.key().to_vec(), e.to_vec()))
        .collect();
    assert_eq!(seq.len(), store.len());
    assert_eq!(seq.iter().cloned().collect::<HashSet<_>>(), par);
    let keys: HashSet<Vec<u8>> = store.keys().collect();
    assert_eq!(keys.len(), store.len());
    let mut borrowed = HashSet::new();
    store.for_each_entry(|k, v| {
        borrowed.insert((k.to_vec(), v.to_vec()));
    });
    assert_eq!(borrowed, par);
    let par_borrowed = std::sync::Mutex::new(HashSet::new());
    store.par_for_each_entry(|k, v| {
        par_borrowed
            .lock()
            .expect("lock")
            .insert((k.to_vec(), v.to_vec()));
    });
    assert_eq!(par_borrowed.into_inner().expect("lock"), par);
    let folded = store.par_fold_entries(
        Vec::new,
        |mut all, k, v| {
            all.push((k.to_vec(), v.to_vec()));
            all
        },
        |mut a, b| {
            a.extend(b);
            a
        },
    );
    assert_eq!(folded.len(), par.len());
    assert_eq!(folded.into_iter().collect::<HashSet<_>>(), par);
    let offsets: Vec<u64> = store
        .iter_entries()
        .map(|e| e.offset_range().start)
        .collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "iteration runs in file order"
    );
    for (key, value) in &seq {
        let i = u32::from_le_bytes(key.as_slice().try_into().expect("4-byte key"));
        let expected: Vec<u8> = if i % 5 == 0 {
            b"new".to_vec()
        } else {
            (i ^ 0xA5A5).to_le_bytes().to_vec()
        };
        assert_eq!(value, &expected);
        assert!(i % 5 == 0 || i % 3 != 0);
    }
}
