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


def test_views_race_compaction_overwrites_and_close(path):
    import threading

    s = mmblob.open(path)
    n = 64
    s.update({f"k{i}": np.full(512, i, dtype=np.int64) for i in range(n)})
    stop = threading.Event()
    failures = []
    held = [[] for _ in range(4)]

    def reader(t):
        rng = np.random.default_rng(t)
        try:
            while not stop.is_set():
                i = int(rng.integers(0, n))
                try:
                    a = s.array(f"k{i}", np.int64)
                    m = s[f"k{i}"]
                except mmblob.ClosedError:
                    break
                if not ((a == i).all() and np.frombuffer(m, np.int64)[-1] == i):
                    failures.append(("fresh", i))
                held[t].append((i, a, m))
                if len(held[t]) > 200:
                    held[t] = held[t][100:]
                for j, old_a, old_m in held[t][::17]:
                    if old_a[0] != j or np.frombuffer(old_m, np.int64)[0] != j:
                        failures.append(("held", j))
        except Exception as e:  # pragma: no cover - reported below
            failures.append(e)

    threads = [threading.Thread(target=reader, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for round in range(20):
        s.update({f"k{i}": np.full(512, i, dtype=np.int64) for i in range(0, n, 3)})
        s["pad"] = np.zeros(100_000, dtype=np.uint8)  # grows the file: re-maps
        s.compact()
    s.close()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures[:5]
    # Views taken before close, across many maps, still read their bytes.
    for views in held:
        for j, a, m in views:
            assert (a == j).all() and (np.frombuffer(m, np.int64) == j).all()
