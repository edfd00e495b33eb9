"""Reads view the memory map: no copy, no memory growth."""

import numpy as np
import pytest


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_array_points_into_the_map(store):
    store["v"] = np.arange(1000, dtype=np.float32)
    map_start, map_len, value_addr, value_len = store._locate("v")
    a = store.array("v", np.float32)
    data = a.__array_interface__["data"][0]
    assert data == value_addr
    assert map_start <= data and data + a.nbytes <= map_start + map_len
    assert value_len == a.nbytes == 4000
    assert data % 64 == 0, "payloads are 64-byte aligned"
    assert not a.flags.writeable and not a.flags.owndata


def address(view):
    return np.frombuffer(view, dtype=np.uint8).__array_interface__["data"][0]


def test_memoryview_points_into_the_map(store):
    store["v"] = b"x" * 100
    _, _, value_addr, _ = store._locate("v")
    # The first read makes the view of the map, later ones slice it.
    assert address(store["v"]) == value_addr
    assert address(store["v"]) == value_addr
    assert address(store.get("v")) == value_addr
    # After appends (and a re-map when the file outgrows its reservation),
    # reads still land on each value's own bytes.
    for i in range(3):
        store[f"w{i}"] = bytes([i]) * (1 << 20)
        for key in ("v", f"w{i}"):
            _, _, addr, length = store._locate(key)
            got = store[key]
            assert address(got) == addr and len(got) == length
            assert address(store[key]) == addr
    store.compact()
    _, _, addr, _ = store._locate("w1")
    assert address(store["w1"]) == addr and bytes(store["w1"][:2]) == b"\x01\x01"


def test_two_reads_share_memory(store):
    store["v"] = np.arange(256, dtype=np.int32)
    a = store.array("v", np.int32)
    b = store.array("v", "i4")
    assert np.shares_memory(a, b)
    assert np.shares_memory(np.frombuffer(store["v"], np.uint8), a)


def test_arrays_cannot_write_into_the_map(store):
    store["v"] = np.zeros(16, dtype=np.float64)
    a = store.array("v", np.float64)
    with pytest.raises(ValueError):
        a[0] = 1.0
    with pytest.raises(ValueError):
        a.flags.writeable = True
    with pytest.raises(TypeError):
        store["v"][0] = 1


def test_array_of_a_large_value_does_not_grow_memory(store):
    size = 64 << 20
    store["big"] = np.ones(size // 4, dtype=np.float32)
    store.close()
    import mmblob

    with mmblob.open(store.path, read_only=True) as ro:
        before = rss_bytes()
        arrays = [ro.array("big", np.float32, (-1, 1024)) for _ in range(10)]
        grown = rss_bytes() - before
        assert arrays[0].shape == (size // 4 // 1024, 1024)
        assert grown < size // 4, f"RSS grew by {grown} bytes for views of {size} bytes"
        assert float(arrays[3][-1, -1]) == 1.0


def test_array_shapes_and_errors(store):
    store["v"] = np.arange(12, dtype=np.int16)
    assert store.array("v", np.int16, (3, 4))[2, 3] == 11
    assert store.array("v", np.int16, 12).shape == (12,)
    assert store.array("v", np.int16, (-1, 6)).shape == (2, 6)
    with pytest.raises(ValueError):
        store.array("v", np.int16, (5, 5))
    with pytest.raises(ValueError):
        store.array("v", "S5")  # 24 bytes are not a whole number of 5-byte items
    assert store.array("v", np.float64).shape == (3,)
    with pytest.raises(KeyError):
        store.array("missing", np.int16)


def test_empty_value_is_an_empty_array(store):
    store["e"] = b""
    assert store.array("e", np.float32).shape == (0,)
    assert bytes(store["e"]) == b""
