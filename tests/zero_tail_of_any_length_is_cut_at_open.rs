//! A writer keeps zero-filled space reserved after its last entry (see
//! docs/format.md). A clean close trims it; a crash leaves it, and open must
//! cut it (a writable open) or ignore it (a read-only open) without
//! reporting it as damage or torn bytes, and find every entry before it —
//! whatever its length, and also when a torn entry lies before the zeros.
//!
//! A store written in the previous version's layout (no reservation, built
//! here byte by byte with the format encoder, as that version wrote it)
//! opens unchanged, takes new writes, and closes with its file ending at
//! its last entry again.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use mmblob::format::{Header, TRAILER_LEN, Trailer, payload_start};
use mmblob::{DataStore, OpenOptions};

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}

fn value(i: usize) -> Vec<u8> {
    (0..(i * 37) % 3000)
        .map(|j| (i + j) as u8 | 1)
        .collect::<Vec<u8>>()
}

/// A store of 50 entries, closed cleanly; returns its length.
fn build(path: &Path) -> u64 {
    let store = DataStore::open(path).expect("open");
    for i in 0..50 {
        store
            .write(format!("k{i}").as_bytes(), &value(i))
            .expect("write");
    }
    // Values ending in zero bytes and an empty value right before the
    // zeros: the last non-zero byte is then inside the last trailer.
    store.write(b"zeros", &[0u8; 200]).expect("write");
    store.write(b"empty", b"").expect("write");
    let end = store.file_size().expect("size");
    assert!(
        file_len(path) > end,
        "the writer keeps space reserved while open"
    );
    drop(store);
    assert_eq!(file_len(path), end, "a clean close trims the reservation");
    end
}

fn assert_intact(store: &DataStore) {
    assert_values(store);
    assert!(store.damage().is_empty(), "{:?}", store.damage());
}

fn assert_values(store: &DataStore) {
    for i in 0..50 {
        let got = store.read(format!("k{i}").as_bytes()).expect("read");
        assert_eq!(got.as_deref(), Some(value(i).as_slice()), "k{i}");
    }
    assert_eq!(
        store.read(b"zeros").expect("read").as_deref(),
        Some(&[0u8; 200][..])
    );
    assert_eq!(
        store.read(b"empty").expect("read").as_deref(),
        Some(&b""[..])
    );
}

#[test]
fn a_zero_tail_of_any_length_is_cut_at_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("zeros.mmblob");
    let end = build(&path);
    let lengths = [
        1u64,
        7,
        8,
        9,
        31,
        32,
        63,
        64,
        4095,
        4096,
        65_537,
        1 << 20,
        (64 << 20) + 5,
    ];
    for zeros in lengths {
        // What a crashed writer leaves: its reservation, allocated ahead.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open file");
        file.set_len(end + zeros).expect("extend with zeros");
        drop(file);

        let reader = OpenOptions::new()
            .read_only(true)
            .open(&path)
            .expect("read-only open");
        assert_eq!(reader.file_size().expect("size"), end, "{zeros} zeros");
        assert_intact(&reader);
        assert_eq!(file_len(&path), end + zeros, "a read-only open cut");

        let store = DataStore::open(&path).expect("open");
        assert_eq!(file_len(&path), end, "{zeros} zeros were not cut");
        assert_eq!(store.stats().file_size, end);
        assert_intact(&store);
        drop(store);
        assert_intact(&reader);
    }
}

#[test]
fn a_torn_entry_before_the_zeros_is_cut_with_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("torn.mmblob");
    let end = build(&path);
    // Half an entry (payload and key, no trailer), then reserved zeros.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open file");
    file.write_all(&vec![0u8; ((64 - end % 64) % 64) as usize])
        .expect("pad");
    file.write_all(&[0xab; 500]).expect("payload");
    file.write_all(b"torn-key").expect("key");
    let torn_end = file_len(&path);
    file.set_len(torn_end + (3 << 20)).expect("zeros");
    drop(file);
    let store = DataStore::open(&path).expect("open");
    assert_eq!(file_len(&path), end);
    assert!(!store.exists(b"torn-key").expect("exists"));
    assert_values(&store);
    // The half entry is a torn write: reported (with the zeros after it) as
    // torn-tail bytes cut, not as damage.
    let damage = store.damage();
    assert_eq!(damage.len(), 1, "{damage:?}");
    assert!(damage[0].is_torn_tail(), "{damage:?}");
    assert_eq!(damage[0].range, end..torn_end + (3 << 20), "{damage:?}");
}

/// One entry as the previous version appended it.
fn encode_entry(store_id: u64, prev_end: u64, key: &[u8], value: &[u8]) -> Vec<u8> {
    let start = payload_start(prev_end, value.len() as u64).expect("small");
    let mut bytes = vec![0u8; (start - prev_end) as usize];
    bytes.extend_from_slice(value);
    bytes.extend_from_slice(key);
    let mut trailer = Trailer {
        prev_end,
        key_hash: mmblob::checksum::key_hash(key),
        payload_len: value.len() as u64,
        key_len: key.len() as u16,
        flags: 0,
        crc: 0,
    };
    trailer.crc = trailer.compute_crc(store_id, value, key);
    bytes.extend_from_slice(&trailer.encode());
    bytes
}

#[test]
fn a_store_written_by_the_previous_version_opens_and_stays_compatible() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("previous.mmblob");
    let store_id = 0x5eed_0000_0000_0001;
    let mut image = Header { store_id }.encode().to_vec();
    for i in 0..20 {
        let entry = encode_entry(
            store_id,
            image.len() as u64,
            format!("old{i}").as_bytes(),
            &value(i),
        );
        image.extend_from_slice(&entry);
    }
    std::fs::write(&path, &image).expect("write the old store");
    let old_end = image.len() as u64;

    let store = DataStore::open(&path).expect("open the old store");
    assert_eq!(store.len(), 20);
    assert_eq!(store.file_size().expect("size"), old_end);
    assert!(store.verify().expect("verify").is_ok());
    for i in 0..20 {
        let got = store.read(format!("old{i}").as_bytes()).expect("read");
        assert_eq!(got.as_deref(), Some(value(i).as_slice()));
    }
    store
        .write(b"new", b"written by this version")
        .expect("write");
    let new_end = store.file_size().expect("size");
    drop(store);

    assert_eq!(file_len(&path), new_end, "closed at its last entry");
    let mut old_part = vec![0u8; image.len()];
    std::fs::File::open(&path)
        .expect("open file")
        .read_exact_at(&mut old_part, 0)
        .expect("read");
    assert_eq!(
        old_part, image,
        "the old entries are byte for byte as they were"
    );
    // The new entry follows the previous version's layout rules too.
    let file = std::fs::read(&path).expect("read");
    let raw: &[u8; TRAILER_LEN as usize] = file[file.len() - TRAILER_LEN as usize..]
        .try_into()
        .expect("trailer");
    assert_eq!(Trailer::decode(raw).prev_end, old_end);
    let store = DataStore::open_existing(&path).expect("reopen");
    assert_eq!(store.len(), 21);
    assert!(store.verify().expect("verify").is_ok());
}
