//! Key and value parameters take anything that can be viewed as bytes
//! (`&str`, `String`, `Vec<u8>`, arrays, handles), `batch_write_pairs`
//! takes owned or borrowed pairs, and the calls written against the
//! slice signatures still compile and behave the same.

use mmblob::DataStore;

#[test]
fn strings_vectors_arrays_and_handles_are_keys_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("s")).unwrap();
    store.write("key", "value").unwrap();
    store.write(String::from("owned"), vec![1u8, 2, 3]).unwrap();
    store.write([0u8, 1], [9u8; 4]).unwrap();
    store.write(b"empty", []).unwrap();
    assert_eq!(store.read("key").unwrap().unwrap().as_slice(), b"value");
    assert_eq!(store.read(b"owned").unwrap().unwrap().as_slice(), [1, 2, 3]);
    assert_eq!(
        store.read(vec![0u8, 1]).unwrap().unwrap().as_slice(),
        [9; 4]
    );
    assert!(store.read("empty").unwrap().unwrap().is_empty());
    let handle = store.read("key").unwrap().unwrap();
    store.write("copy", &handle).unwrap();
    assert!(store.exists("copy").unwrap());
    store.rename("copy", String::from("moved")).unwrap();
    assert_eq!(store.read_with("moved", <[u8]>::len).unwrap(), Some(5));
    assert_eq!(store.entry_info("moved").unwrap().unwrap().len, 5);
    store
        .write_stream("streamed", &mut "from a reader".as_bytes())
        .unwrap();
    assert!(store.delete("streamed").unwrap());

    let rows: Vec<(String, Vec<u8>)> = (0..3).map(|i| (format!("row/{i}"), vec![i; 2])).collect();
    store.batch_write_pairs(&rows).unwrap();
    store.batch_write_pairs(&[("a", "1"), ("b", "22")]).unwrap();
    assert_eq!(store.keys_with_prefix(b"row/").count(), 3);
    assert_eq!(store.read("b").unwrap().unwrap().as_slice(), b"22");

    let ns = store.namespace("users").unwrap();
    ns.write("alice", "admin").unwrap();
    ns.batch_write_pairs(&rows).unwrap();
    assert_eq!(ns.read("alice").unwrap().unwrap().as_slice(), b"admin");
    assert_eq!(ns.len(), 4);
    assert!(ns.delete(String::from("alice")).unwrap());
}

#[test]
fn calls_written_for_slice_parameters_still_compile() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("s")).unwrap();
    let key: Vec<u8> = b"k".to_vec();
    let value: &[u8] = b"v";
    let size = store.write(&key, value).unwrap();
    store.write(key.as_slice(), &value[..1]).unwrap();
    store.write(&key[..], &[]).unwrap();
    assert_eq!(store.batch_write(&[]).unwrap(), store.file_size().unwrap());
    store
        .batch_write(&[(b"a".as_slice(), b"1".as_slice()), (b"bb", b"22")])
        .unwrap();
    store.batch_write(&[(b"x", b"1"), (b"yy", b"22")]).unwrap();
    let pairs: Vec<(&[u8], &[u8])> = vec![(b"p", b"q")];
    store.batch_write(&pairs).unwrap();
    assert!(size > 64);
    assert_eq!(store.batch_read(&[b"a", b"bb"]).unwrap().len(), 2);
    assert_eq!(store.batch_delete(&[b"a", b"missing"]).unwrap(), 1);
}
