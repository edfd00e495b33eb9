"""Views keep their bytes alive: after close, compaction and garbage collection."""

import gc
import weakref

import numpy as np

import mmblob


def test_views_survive_close(path):
    s = mmblob.open(path)
    s["v"] = np.arange(1000, dtype=np.float64)
    s["b"] = b"bytes"
    a = s.array("v", np.float64)
    m = s["b"]
    stream = s.open_stream("b")
    s.close()
    assert a.sum() == sum(range(1000))
    assert bytes(m) == b"bytes"
    assert stream.read() == b"bytes"


def test_views_survive_compaction(path):
    s = mmblob.open(path)
    for i in range(50):
        s[f"k{i}"] = np.full(100, i, dtype=np.int32)
    views = [s.array(f"k{i}", np.int32) for i in range(50)]
    for i in range(0, 50, 2):
        del s[f"k{i}"]
    for i in range(1, 50, 2):
        s[f"k{i}"] = np.full(100, -i, dtype=np.int32)  # overwrite
    stats = s.compact()
    assert stats["bytes_after"] < stats["bytes_before"]
    for i, v in enumerate(views):
        assert (v == i).all()
    for i in range(1, 50, 2):
        assert (s.array(f"k{i}", np.int32) == -i).all()
    s.close()


def test_views_survive_store_garbage_collection(path):
    s = mmblob.open(path)
    s["v"] = np.arange(4096, dtype=np.uint16)
    a = s.array("v", np.uint16)
    mv = s["v"]
    ref = weakref.ref(s)
    del s
    gc.collect()
    assert ref() is None
    # The store is gone, its lock released, the views still read the map.
    with mmblob.open(path) as again:
        again["other"] = b"x"
    assert (a == np.arange(4096, dtype=np.uint16)).all()
    assert np.frombuffer(mv, np.uint16)[4095] == 4095


def test_deleted_key_view_stays_valid(store):
    store["k"] = b"old"
    view = store["k"]
    del store["k"]
    store["k"] = b"new"
    assert bytes(view) == b"old"
    assert bytes(store["k"]) == b"new"


def test_value_objects_are_not_constructible():
    import pytest

    with pytest.raises(TypeError):
        mmblob.Value()


def test_many_views_are_freed(store):
    store["k"] = b"x" * 1000
    for _ in range(100_000):
        store["k"]
    gc.collect()
