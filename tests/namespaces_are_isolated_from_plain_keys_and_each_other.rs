//! Namespaces: keys of one namespace never meet plain keys or keys of
//! another namespace, through every call and across a reopen; bad names
//! and plain keys in the reserved namespaced form get typed errors and
//! write nothing; `clear` deletes a namespace in one atomic batch.

use mmblob::namespace::{MAX_NAMESPACE_LEN, namespaced_key, split_key};
use mmblob::{DataStore, Error};

fn value(h: &mmblob::EntryHandle) -> Vec<u8> {
    h.as_slice().to_vec()
}

#[test]
fn the_same_key_in_plain_and_two_namespaces_holds_three_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.mmblob");
    {
        let store = DataStore::open(&path).unwrap();
        let users = store.namespace("users").unwrap();
        let groups = store.namespace("groups").unwrap();
        store.write(b"alice", b"plain").unwrap();
        users.write(b"alice", b"user").unwrap();
        groups.write(b"alice", b"group").unwrap();
        // A namespace name that looks like the start of a plain key.
        store.write(b"usersalice", b"lookalike").unwrap();
        store.write(b"users", b"plain users").unwrap();

        assert_eq!(value(&store.read(b"alice").unwrap().unwrap()), b"plain");
        assert_eq!(value(&users.read(b"alice").unwrap().unwrap()), b"user");
        assert_eq!(value(&groups.read(b"alice").unwrap().unwrap()), b"group");
        assert!(users.read(b"lice").unwrap().is_none());
        assert_eq!(users.len(), 1);
        assert_eq!(groups.len(), 1);
        assert_eq!(users.keys().collect::<Vec<_>>(), vec![b"alice".to_vec()]);
        let entries: Vec<_> = users.iter_entries().collect();
        assert_eq!(entries.len(), 1);
        assert_eq!(users.key_of(entries[0].key()), Some(&b"alice"[..]));
        assert_eq!(groups.key_of(entries[0].key()), None);
        assert_eq!(store.namespaces().unwrap(), ["groups", "users"]);

        assert!(users.delete(b"alice").unwrap());
        assert!(!users.exists(b"alice").unwrap());
        assert!(store.exists(b"alice").unwrap());
        assert!(groups.exists(b"alice").unwrap());
        assert!(!users.delete(b"alice").unwrap());
        assert_eq!(store.namespaces().unwrap(), ["groups"]);
        users.write(b"bob", b"b").unwrap();
    }
    let store = DataStore::open_existing(&path).unwrap();
    let users = store.namespace("users").unwrap();
    assert_eq!(value(&users.read(b"bob").unwrap().unwrap()), b"b");
    assert!(users.read(b"alice").unwrap().is_none());
    assert_eq!(value(&store.read(b"alice").unwrap().unwrap()), b"plain");
    assert_eq!(
        value(
            &store
                .namespace("groups")
                .unwrap()
                .read(b"alice")
                .unwrap()
                .unwrap()
        ),
        b"group"
    );
    assert_eq!(store.namespaces().unwrap(), ["groups", "users"]);
}

#[test]
fn bad_namespace_names_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("s")).unwrap();
    let too_long = "n".repeat(MAX_NAMESPACE_LEN + 1);
    for name in ["", too_long.as_str(), "a\0b", "tab\there", "new\nline"] {
        match store.namespace(name) {
            Err(Error::InvalidNamespace { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{name:?}: expected InvalidNamespace, got {other:?}"),
        }
    }
    let longest = "n".repeat(MAX_NAMESPACE_LEN);
    let ns = store.namespace(&longest).unwrap();
    ns.write(b"k", b"v").unwrap();
    assert_eq!(store.namespaces().unwrap(), vec![longest]);
    // Unicode names work.
    store
        .namespace("größe/日本")
        .unwrap()
        .write(b"k", b"v")
        .unwrap();
    assert_eq!(store.namespaces().unwrap().len(), 2);
}

#[test]
fn keys_in_a_namespace_are_checked_against_the_room_left_by_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("s")).unwrap();
    let ns = store.namespace("abc").unwrap();
    // The 8-byte tag, the length byte and the 3-byte name.
    assert_eq!(ns.max_key_len(), 65535 - 8 - 1 - 3);
    let longest = vec![7u8; ns.max_key_len()];
    ns.write(&longest, b"v").unwrap();
    assert!(ns.exists(&longest).unwrap());
    let too_long = vec![7u8; ns.max_key_len() + 1];
    for result in [
        ns.write(&too_long, b"v").map(drop),
        ns.write(b"", b"v").map(drop),
        ns.read(b"").map(drop),
        ns.batch_write(&[(b"ok", b"1"), (b"", b"2")]).map(drop),
    ] {
        assert!(
            matches!(result, Err(Error::InvalidNamespaceKey { ref namespace, .. }) if namespace == "abc"),
            "{result:?}"
        );
    }
    assert!(!ns.exists(b"ok").unwrap(), "a refused batch wrote nothing");
}

#[test]
fn plain_writes_of_the_reserved_form_are_refused_and_other_ff_keys_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("s")).unwrap();
    let reserved = namespaced_key("users", b"alice");
    assert_eq!(split_key(&reserved), Some(("users", &b"alice"[..])));
    let refused = [
        store.write(&reserved, b"x").map(drop),
        store
            .batch_write(&[(b"fine", b"1"), (&reserved, b"2")])
            .map(drop),
        store.write_stream(&reserved, &mut &b"x"[..]).map(drop),
    ];
    for result in refused {
        assert!(
            matches!(result, Err(Error::ReservedKey { ref namespace, .. }) if namespace == "users"),
            "{result:?}"
        );
    }
    store.write(b"old", b"v").unwrap();
    assert!(matches!(
        store.rename(b"old", &reserved),
        Err(Error::ReservedKey { .. })
    ));
    assert!(
        !store.exists(b"fine").unwrap(),
        "a refused batch wrote nothing"
    );
    assert!(store.namespace("users").unwrap().is_empty());

    // Plain keys that start with 0xFF but are not of the reserved form.
    let allowed: [&[u8]; 6] = [
        b"\xff",
        b"\xff\x00abc",          // zero-length name
        b"\xff\x05users",        // nothing after the name
        b"\xff\x09users",        // length past the end
        b"\xff\x02\xc3\x28rest", // name not UTF-8
        b"\xff\x01\x07rest",     // control character in the name
    ];
    for key in allowed {
        assert_eq!(split_key(key), None);
        store.write(key, key).unwrap();
        assert_eq!(store.read(key).unwrap().unwrap().as_slice(), key);
    }
    assert!(store.namespaces().unwrap().is_empty());
}

#[test]
fn clear_deletes_every_key_of_one_namespace_in_one_atomic_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = DataStore::open(&path).unwrap();
    let a = store.namespace("a").unwrap();
    let b = store.namespace("b").unwrap();
    for i in 0..100u32 {
        a.write(&i.to_le_bytes(), b"a").unwrap();
        b.write(&i.to_le_bytes(), b"b").unwrap();
        store.write(&i.to_le_bytes(), b"plain").unwrap();
    }
    let size_before = store.file_size().unwrap();
    assert_eq!(a.clear().unwrap(), 100);
    assert!(a.is_empty());
    assert_eq!(b.len(), 100);
    assert_eq!(store.namespaces().unwrap(), ["b"]);
    assert_eq!(a.clear().unwrap(), 0);
    drop(store);

    // Atomic: cutting the file anywhere inside the clear's batch brings
    // back all 100 keys, never some of them.
    let full = std::fs::read(&path).unwrap();
    let torn = dir.path().join("torn");
    for cut in [
        size_before + 1,
        (size_before + full.len() as u64) / 2,
        full.len() as u64 - 1,
    ] {
        std::fs::write(&torn, &full[..cut as usize]).unwrap();
        let store = DataStore::open(&torn).unwrap();
        assert_eq!(store.namespace("a").unwrap().len(), 100, "cut at {cut}");
        drop(store);
        std::fs::remove_file(&torn).unwrap();
    }
}

#[test]
fn a_store_without_namespaces_is_byte_for_byte_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let store = DataStore::open(&path).unwrap();
    store.write(b"k", b"v").unwrap();
    let before = std::fs::read(&path).unwrap();
    // Looking at namespaces writes nothing.
    let ns = store.namespace("users").unwrap();
    assert!(ns.is_empty());
    assert!(ns.read(b"k").unwrap().is_none());
    assert!(!ns.delete(b"k").unwrap());
    assert_eq!(ns.clear().unwrap(), 0);
    assert!(store.namespaces().unwrap().is_empty());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(store.keys().collect::<Vec<_>>(), vec![b"k".to_vec()]);
}

#[test]
fn namespaced_entries_survive_compaction_and_batches_are_atomic_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("s")).unwrap();
    let ns = store.namespace("t").unwrap();
    ns.batch_write(&[(b"x", b"1"), (b"y", b"2"), (b"x", b"3")])
        .unwrap();
    ns.write(b"z", b"9").unwrap();
    assert_eq!(ns.batch_delete(&[b"z", b"nope"]).unwrap(), 1);
    store.compact().unwrap();
    assert_eq!(value(&ns.read(b"x").unwrap().unwrap()), b"3");
    assert_eq!(value(&ns.read(b"y").unwrap().unwrap()), b"2");
    assert_eq!(ns.len(), 2);
    let mut keys: Vec<_> = ns.keys_with_prefix(b"").collect();
    keys.sort();
    assert_eq!(keys, vec![b"x".to_vec(), b"y".to_vec()]);
}

#[test]
fn streams_renames_metadata_and_prefixes_stay_inside_the_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("s")).unwrap();
    let ns = store.namespace("media").unwrap();
    let big = vec![5u8; 3 << 20];
    ns.write_stream(b"video/1", &mut big.as_slice()).unwrap();
    ns.write_stream(b"video/empty", &mut &b""[..]).unwrap();
    store.write(b"video/1", b"plain").unwrap();
    assert_eq!(ns.read(b"video/1").unwrap().unwrap().len(), big.len());
    assert!(ns.read(b"video/empty").unwrap().unwrap().is_empty());

    ns.rename(b"video/1", b"video/2").unwrap();
    assert!(!ns.exists(b"video/1").unwrap());
    assert_eq!(ns.read(b"video/2").unwrap().unwrap().len(), big.len());
    assert_eq!(value(&store.read(b"video/1").unwrap().unwrap()), b"plain");
    assert!(matches!(
        ns.rename(b"missing", b"x"),
        Err(Error::KeyNotFound { .. })
    ));

    let info = ns.entry_info(b"video/2").unwrap().unwrap();
    assert_eq!(info.len, big.len() as u64);
    assert_eq!(info.key, namespaced_key("media", b"video/2"));
    assert!(ns.entry_info(b"video/1").unwrap().is_none());

    let listed: Vec<Vec<u8>> = ns
        .entries_with_prefix(b"video/")
        .map(|e| ns.key_of(e.key()).unwrap().to_vec())
        .collect();
    assert_eq!(listed.len(), 2);
    assert_eq!(ns.keys_with_prefix(b"video/2").count(), 1);
    assert_eq!(
        store.keys_with_prefix(b"video/").count(),
        1,
        "the plain key"
    );
}
