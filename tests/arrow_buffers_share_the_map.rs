//! Feature `arrow`: `to_arrow_buffer` points into the map (same address as
//! the handle's slice, no copy), and the buffer keeps the bytes alive and
//! unchanged after the store is compacted, overwritten and dropped, while
//! other threads compact and read concurrently. `to_arrow_scalar_buffer`
//! gives typed views and refuses lengths that do not divide.

use std::sync::Arc;

use arrow_buffer::{Buffer, ScalarBuffer};
use mmblob::{DataStore, Error};

#[test]
fn the_buffer_is_the_map_and_outlives_compaction_and_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("s")).unwrap();
    let floats: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5).collect();
    store
        .write(b"floats", bytemuck::cast_slice(&floats))
        .unwrap();
    store.write(b"bytes", b"hello arrow").unwrap();
    store.write(b"empty", b"").unwrap();

    let handle = store.read(b"floats").unwrap().unwrap();
    let buffer: Buffer = handle.to_arrow_buffer();
    assert_eq!(buffer.as_ptr(), handle.as_slice().as_ptr(), "no copy");
    assert_eq!(buffer.len(), 4000);
    assert_eq!(buffer.as_ptr().addr() % 64, 0, "64-byte aligned");
    let scalars: ScalarBuffer<f32> = handle.to_arrow_scalar_buffer().unwrap();
    assert_eq!(scalars.as_ptr().cast::<u8>(), handle.as_slice().as_ptr());
    assert_eq!(&scalars[..], floats.as_slice());
    let bytes = store.read(b"bytes").unwrap().unwrap().to_arrow_buffer();
    let empty = store.read(b"empty").unwrap().unwrap().to_arrow_buffer();
    assert!(empty.is_empty());
    drop(handle);

    // Overwrite, compact and drop the store: the buffers still hold the
    // old bytes (the old file's map is kept alive by them).
    store.write(b"floats", b"replaced").unwrap();
    store.compact().unwrap();
    drop(store);
    assert_eq!(bytes.as_slice(), b"hello arrow");
    assert_eq!(&scalars[..], floats.as_slice());
    assert_eq!(buffer.typed_data::<f32>(), floats.as_slice());
    let slice = buffer.slice_with_length(4, 8);
    drop(buffer);
    assert_eq!(slice.typed_data::<f32>(), &floats[1..3]);
}

#[test]
fn buffers_read_while_other_threads_compact_and_write_stay_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(DataStore::open(dir.path().join("s")).unwrap());
    for i in 0..64u64 {
        store
            .write(&i.to_le_bytes(), bytemuck::cast_slice(&[i; 512]))
            .unwrap();
    }
    let buffers: Vec<(u64, ScalarBuffer<u64>)> = (0..64u64)
        .map(|i| {
            let h = store.read(&i.to_le_bytes()).unwrap().unwrap();
            (i, h.to_arrow_scalar_buffer::<u64>().unwrap())
        })
        .collect();
    let churn = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for round in 0..20u64 {
                for i in 0..64u64 {
                    store
                        .write(&i.to_le_bytes(), bytemuck::cast_slice(&[round; 700]))
                        .unwrap();
                }
                store.compact().unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let buffers = buffers.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    for (i, buffer) in &buffers {
                        assert!(buffer.iter().all(|v| v == i));
                    }
                }
            })
        })
        .collect();
    churn.join().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    drop(store);
    for (i, buffer) in &buffers {
        assert_eq!(buffer.len(), 512);
        assert!(buffer.iter().all(|v| v == i));
    }
}

#[test]
fn scalar_buffers_refuse_lengths_that_do_not_divide() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path().join("s")).unwrap();
    store.write(b"seven", &[1u8; 7]).unwrap();
    let h = store.read(b"seven").unwrap().unwrap();
    assert!(matches!(
        h.to_arrow_scalar_buffer::<u32>(),
        Err(Error::TypedView {
            len: 7,
            size: 4,
            ..
        })
    ));
    assert_eq!(h.to_arrow_scalar_buffer::<u8>().unwrap().len(), 7);
}
