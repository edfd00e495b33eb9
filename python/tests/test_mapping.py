"""A Store behaves like a dict of bytes/str keys to binary values."""

import array
import mmap
from collections.abc import MutableMapping

import numpy as np
import pytest

import mmblob


VALUES = {
    "bytes": b"hello",
    "empty": b"",
    "zero byte": b"\x00",
    "bytearray": bytearray(b"\x01\x02\x03"),
    "memoryview": memoryview(b"abcdef"),
    "memoryview slice": memoryview(b"0123456789")[2:7],
    "array.array": array.array("d", [1.5, 2.5]),
    "numpy f32": np.arange(17, dtype=np.float32),
    "numpy 2d": np.arange(12, dtype=np.int64).reshape(3, 4),
    "numpy bool": np.array([True, False, True]),
    "all byte values": bytes(range(256)),
    "large": np.random.default_rng(1).integers(0, 255, 3 << 20, dtype=np.uint8),
}


def raw(value):
    return memoryview(value).cast("B").tobytes() if memoryview(value).nbytes else b""


@pytest.mark.parametrize("name", sorted(VALUES))
def test_every_value_type_round_trips(store, path, name):
    value = VALUES[name]
    store[name] = value
    got = store[name]
    assert isinstance(got, memoryview)
    assert got.readonly
    assert got.format == "B" and got.ndim == 1
    assert bytes(got) == raw(value)
    store.close()
    with mmblob.open(path) as again:
        assert bytes(again[name]) == raw(value)


def test_mmap_object_is_a_value(store, tmp_path):
    f = tmp_path / "src.bin"
    f.write_bytes(b"mapped bytes")
    with open(f, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
        store["m"] = m
    assert bytes(store["m"]) == b"mapped bytes"


def test_str_and_bytes_keys_are_the_same_key(store):
    store["é/ключ"] = b"1"
    assert bytes(store["é/ключ".encode()]) == b"1"
    assert "é/ключ" in store
    assert list(store.keys()) == ["é/ключ".encode()]


def test_dict_protocol(store):
    assert len(store) == 0 and list(store) == []
    store["a"] = b"1"
    store["b"] = b"22"
    store["a"] = b"333"  # overwrite
    assert len(store) == 2
    assert "a" in store and b"b" in store and "c" not in store
    assert sorted(store) == [b"a", b"b"]
    assert sorted(store.keys()) == [b"a", b"b"]
    assert sorted(bytes(v) for v in store.values()) == [b"22", b"333"]
    assert {k: bytes(v) for k, v in store.items()} == {b"a": b"333", b"b": b"22"}
    assert store.get("zz") is None
    assert store.get("zz", 7) == 7
    assert bytes(store.get("a")) == b"333"
    with pytest.raises(KeyError) as info:
        store["zz"]
    assert info.value.args == ("zz",)
    del store["a"]
    assert "a" not in store and len(store) == 1
    with pytest.raises(KeyError):
        del store["a"]
    assert isinstance(store, MutableMapping)


def test_pop_setdefault_clear(store):
    store.update(a=b"1", b=b"2", c=b"3")
    assert store.pop("a") == b"1"
    assert store.pop("a", None) is None
    with pytest.raises(KeyError):
        store.pop("a")
    assert bytes(store.setdefault("b", b"x")) == b"2"
    assert bytes(store.setdefault("d", b"4")) == b"4"
    store.clear()
    assert len(store) == 0


def test_update_takes_mappings_pairs_and_keywords(store):
    store.update({"a": b"1"})
    store.update([("b", b"2"), (b"c", bytearray(b"3"))])
    store.update(((k, v) for k, v in [("d", b"4")]))
    store.update(e=b"5")
    store.update({"f": b"6"}.items())
    store.update()
    assert {k: bytes(v) for k, v in store.items()} == {
        b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4", b"e": b"5", b"f": b"6"
    }


def test_update_is_all_or_nothing_on_bad_input(store):
    with pytest.raises(TypeError):
        store.update({"a": b"1", "b": 2})
    with pytest.raises(mmblob.InvalidKeyError):
        store.update({"a": b"1", "": b"2"})
    assert len(store) == 0


def test_update_last_write_of_a_key_wins(store):
    store.update([("k", b"1"), ("k", b"2")])
    assert bytes(store["k"]) == b"2"


def test_get_many(store):
    store.update(a=b"1", b=b"2")
    got = store.get_many(["a", "missing", b"b"])
    assert [None if v is None else bytes(v) for v in got] == [b"1", None, b"2"]
    assert store.get_many([]) == []


def test_delete_and_delete_many(store):
    store.update(a=b"1", b=b"2", c=b"3")
    assert store.delete("a") is True
    assert store.delete("a") is False
    assert store.delete_many(["b", "c", "nope"]) == 2
    assert len(store) == 0


def test_iteration_is_a_snapshot(store):
    store.update({f"k{i}": b"v" for i in range(100)})
    it = iter(store.items())
    store["late"] = b"x"
    assert len(list(it)) == 100
    assert len(list(store.keys())) == 101


def test_repr_shows_path_and_count(store, path):
    store["a"] = b"1"
    assert repr(store) == f'<mmblob.Store path="{path}" entries=1>'
    store.close()
    assert "closed" in repr(store)


def test_context_manager_closes(path):
    with mmblob.open(path) as s:
        s["a"] = b"1"
        assert not s.closed
    assert s.closed
    # The write lock is gone: a second writer can open.
    with mmblob.open(path) as s2:
        assert bytes(s2["a"]) == b"1"


def test_durability_modes(tmp_path):
    for mode in ("none", "flush", "sync"):
        p = str(tmp_path / f"{mode}.mmblob")
        with mmblob.open(p, durability=mode) as s:
            s["k"] = mode.encode()
            s.sync()
        with mmblob.open(p, read_only=True) as s:
            assert bytes(s["k"]) == mode.encode()
