//! A whole store file kept as a value in another store streams back out
//! byte for byte and opens as a store again, and its trailers never confuse
//! the outer store's recovery: not when the nested value is the last entry,
//! not when a torn write follows it, not even when both stores share a
//! store id.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use mmblob::DataStore;

type Contents = BTreeMap<Vec<u8>, Vec<u8>>;
/// A named way to tear the end of a store file.
type Tear = (&'static str, Box<dyn Fn(&Path)>);

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Builds a store at `path` with overwrites, deletes, a batch, an empty
/// value and a value larger than one stream chunk; returns its contents.
fn build_inner(path: &Path, seed: u64) -> Contents {
    let store = DataStore::open(path).expect("open inner");
    let mut contents = Contents::new();
    for i in 0..40u64 {
        let key = format!("inner-{seed}-{i}").into_bytes();
        let value = bytes(seed * 1000 + i, (i as usize * 389) % 3000);
        store.write(&key, &value).expect("write");
        contents.insert(key, value);
    }
    for i in (0..40u64).step_by(4) {
        let key = format!("inner-{seed}-{i}").into_bytes();
        store.delete(&key).expect("delete");
        contents.remove(&key);
    }
    let batch = [
        (b"batch-a".to_vec(), bytes(seed + 1, 100)),
        (b"batch-b".to_vec(), Vec::new()),
    ];
    let refs: Vec<(&[u8], &[u8])> = batch.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    store.batch_write(&refs).expect("batch");
    contents.extend(batch);
    let large = bytes(seed + 2, (1 << 20) + 100);
    store.write(b"large", &large).expect("write");
    contents.insert(b"large".to_vec(), large);
    drop(store);
    contents
}

fn contents_of(store: &DataStore) -> Contents {
    store
        .iter_entries()
        .map(|e| (e.key().to_vec(), e.to_vec()))
        .collect()
}

fn assert_clean(store: &DataStore, contents: &Contents, what: &str) {
    assert!(contents_of(store) == *contents, "{what}: contents");
    let report = store.verify().expect("verify");
    assert!(report.is_ok(), "{what}: {report:?}");
    // Bytes of a torn write cut at open are reported, but are not damage.
    assert!(
        store.damage().iter().all(|d| d.is_torn_tail()),
        "{what}: damage recorded: {:?}",
        store.damage()
    );
}

/// Streams the value under `key` out to a new file and opens it as a store.
fn extract(outer: &DataStore, key: &[u8], to: &Path, original: &Path) -> DataStore {
    let entry = outer
        .read(key)
        .expect("read")
        .expect("nested value present");
    let mut out = File::create(to).expect("create extracted file");
    let copied = std::io::copy(&mut entry.stream(), &mut out).expect("stream out");
    assert_eq!(copied, entry.len() as u64);
    drop(out);
    assert!(
        std::fs::read(to).expect("read extracted")
            == std::fs::read(original).expect("read original"),
        "extracted file is byte for byte the original"
    );
    DataStore::open_existing(to).expect("extracted file opens as a store")
}

struct Setup {
    _dir: tempfile::TempDir,
    inner_path: PathBuf,
    inner: Contents,
    outer_path: PathBuf,
    outer: Contents,
}

/// An outer store holding the inner store file under `nested` as its last
/// entry. With `same_id`, the outer store starts as a copy of the inner
/// one, so both have the same store id and checksum seed.
fn setup(same_id: bool) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let inner_path = dir.path().join("inner.mmblob");
    let inner = build_inner(&inner_path, 1);
    let outer_path = dir.path().join("outer.mmblob");
    let mut outer = if same_id {
        std::fs::copy(&inner_path, &outer_path).expect("copy");
        inner.clone()
    } else {
        Contents::new()
    };
    let store = DataStore::open(&outer_path).expect("open outer");
    store
        .write(b"outer-before", b"written before")
        .expect("write");
    outer.insert(b"outer-before".to_vec(), b"written before".to_vec());
    store
        .write_stream(
            b"nested",
            &mut File::open(&inner_path).expect("open inner file"),
        )
        .expect("store the inner file as a value");
    outer.insert(
        b"nested".to_vec(),
        std::fs::read(&inner_path).expect("read inner"),
    );
    drop(store);
    Setup {
        _dir: dir,
        inner_path,
        inner,
        outer_path,
        outer,
    }
}

#[test]
fn a_store_file_round_trips_through_a_value() {
    for same_id in [false, true] {
        let s = setup(same_id);
        let outer = DataStore::open_existing(&s.outer_path).expect("reopen outer");
        assert_clean(&outer, &s.outer, "outer, nested value last");
        let extracted_path = s.outer_path.with_file_name("extracted.mmblob");
        let extracted = extract(&outer, b"nested", &extracted_path, &s.inner_path);
        assert_clean(&extracted, &s.inner, "extracted store");
        // The extracted store is a working store of its own.
        extracted
            .write(b"new", b"in the extracted copy")
            .expect("write");
        drop(extracted);
        let extracted = DataStore::open_existing(&extracted_path).expect("reopen extracted");
        assert_eq!(extracted.len(), s.inner.len() + 1);

        // Entries after the nested one, then compaction of the outer store.
        outer
            .write(b"outer-after", b"written after")
            .expect("write");
        let mut contents = s.outer.clone();
        contents.insert(b"outer-after".to_vec(), b"written after".to_vec());
        drop(outer);
        let outer = DataStore::open_existing(&s.outer_path).expect("reopen");
        assert_clean(&outer, &contents, "outer, nested value in the middle");
        outer.compact().expect("compact outer");
        drop(outer);
        let outer = DataStore::open_existing(&s.outer_path).expect("reopen compacted");
        assert_clean(&outer, &contents, "outer after compaction");
        let again = s.outer_path.with_file_name("again.mmblob");
        let extracted = extract(&outer, b"nested", &again, &s.inner_path);
        assert_clean(&extracted, &s.inner, "extracted after compaction");
    }
}

#[test]
fn a_store_nested_two_levels_deep_round_trips() {
    let dir = tempfile::tempdir().expect("temp dir");
    let innermost = dir.path().join("innermost.mmblob");
    let innermost_contents = build_inner(&innermost, 5);
    let middle = dir.path().join("middle.mmblob");
    let store = DataStore::open(&middle).expect("open");
    store
        .write_stream(b"deeper", &mut File::open(&innermost).expect("open"))
        .expect("nest");
    drop(store);
    let outer_path = dir.path().join("outer.mmblob");
    let outer = DataStore::open(&outer_path).expect("open");
    outer
        .write_stream(b"middle", &mut File::open(&middle).expect("open"))
        .expect("nest");
    drop(outer);
    let outer = DataStore::open_existing(&outer_path).expect("reopen");
    assert_eq!(outer.len(), 1);
    let middle_store = extract(&outer, b"middle", &dir.path().join("m2.mmblob"), &middle);
    let deepest = extract(
        &middle_store,
        b"deeper",
        &dir.path().join("i2.mmblob"),
        &innermost,
    );
    assert_clean(&deepest, &innermost_contents, "two levels deep");
}

/// The ways a write after the nested value can be torn by a crash.
fn torn_tails(s: &Setup, outer_len: u64) -> Vec<Tear> {
    let inner_file = std::fs::read(&s.inner_path).expect("read inner");
    let inner_len = inner_file.len() as u64;
    let mut tails: Vec<Tear> = Vec::new();
    tails.push((
        "a few garbage bytes",
        Box::new(|path| append(path, &[0xAB; 5])),
    ));
    let raw = inner_file.clone();
    tails.push((
        "the inner store file appended raw",
        Box::new(move |path| append(path, &raw)),
    ));
    let raw_part = inner_file[..inner_file.len() - 7].to_vec();
    tails.push((
        "most of the inner store file appended raw",
        Box::new(move |path| append(path, &raw_part)),
    ));
    // A second copy of the nested store, streamed and cut at places where the
    // file ends in the inner store's own trailers.
    for (name, cut_from_end) in [
        ("a second nested copy cut mid-payload", None),
        ("a second nested copy without key and trailer", Some(0)),
        ("a second nested copy cut inside its trailer", Some(1)),
    ] {
        let inner_path = s.inner_path.clone();
        tails.push((
            name,
            Box::new(move |path| {
                let store = DataStore::open(path).expect("open");
                let end = store
                    .write_stream(b"second", &mut File::open(&inner_path).expect("open"))
                    .expect("write second copy");
                let entry = store.read(b"second").expect("read").expect("present");
                let payload = entry.offset_range();
                drop((entry, store));
                let cut = match cut_from_end {
                    None => payload.start + inner_len / 2,
                    Some(0) => payload.end,
                    Some(n) => end - n,
                };
                File::options()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(cut))
                    .expect("tear");
            }),
        ));
    }
    // A batch whose last entry never made it.
    tails.push((
        "a batch missing its last entry",
        Box::new(move |path| {
            let store = DataStore::open(path).expect("open");
            store
                .batch_write(&[(b"torn-a", b"x"), (b"torn-b", b"y")])
                .expect("batch");
            drop(store);
            let len = std::fs::metadata(path).expect("metadata").len();
            File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(len - 3))
                .expect("tear");
        }),
    ));
    assert!(outer_len > inner_len);
    tails
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    File::options()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .expect("append");
}

#[test]
fn a_torn_write_right_after_the_nested_value_is_cut_off() {
    for same_id in [false, true] {
        let s = setup(same_id);
        let pristine = std::fs::read(&s.outer_path).expect("read outer");
        let outer_len = pristine.len() as u64;
        for (what, tear) in torn_tails(&s, outer_len) {
            std::fs::write(&s.outer_path, &pristine).expect("restore");
            // The index sidecar of the previous round records that the store
            // reached further than the restored file: a truncation. Restoring
            // an old copy means restoring (here: dropping) its sidecar too.
            let mut sidecar = s.outer_path.as_os_str().to_owned();
            sidecar.push(".index");
            let _ = std::fs::remove_file(&sidecar);
            tear(&s.outer_path);
            // A torn write comes with a crash, which leaves no sidecar
            // recording the end the tear cuts into.
            let _ = std::fs::remove_file(&sidecar);
            let what = format!("{what} (same id: {same_id})");
            assert!(
                std::fs::metadata(&s.outer_path).expect("metadata").len() > outer_len,
                "{what}: torn bytes present"
            );
            let store = DataStore::open_existing(&s.outer_path).expect("open torn outer");
            assert_eq!(
                std::fs::metadata(&s.outer_path).expect("metadata").len(),
                outer_len,
                "{what}: cut back to the end of the nested value"
            );
            assert_eq!(store.file_size().expect("size"), outer_len, "{what}");
            assert_clean(&store, &s.outer, &what);
            let out = s.outer_path.with_file_name("out.mmblob");
            let extracted = extract(&store, b"nested", &out, &s.inner_path);
            assert_clean(&extracted, &s.inner, &what);
            drop(extracted);
            std::fs::remove_file(&out).expect("remove");
            // The outer store takes new writes after the cut.
            store.write(b"after the cut", b"ok").expect("write");
            drop(store);
            let store = DataStore::open_existing(&s.outer_path).expect("reopen");
            assert_eq!(store.len(), s.outer.len() + 1, "{what}");
        }
    }
}
