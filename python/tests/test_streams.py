"""Values stream in and out as binary files."""

import io
import shutil

import numpy as np
import pytest


def test_write_stream_and_copyfileobj_round_trip(store, tmp_path):
    data = np.random.default_rng(2).integers(0, 255, (5 << 20) + 123, dtype=np.uint8).tobytes()
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    with open(src, "rb") as f:
        assert store.write_stream("blob", f) == len(data)
    assert bytes(store["blob"]) == data
    dst = tmp_path / "dst.bin"
    with store.open_stream("blob") as s, open(dst, "wb") as out:
        shutil.copyfileobj(s, out)
    assert dst.read_bytes() == data


def test_write_stream_of_nothing_stores_an_empty_value(store):
    assert store.write_stream("e", io.BytesIO()) == 0
    assert bytes(store["e"]) == b""


def test_write_stream_aborted_by_the_file_stores_nothing(store):
    class Failing(io.RawIOBase):
        def __init__(self):
            self.calls = 0

        def readable(self):
            return True

        def read(self, n=-1):
            self.calls += 1
            if self.calls > 2:
                raise RuntimeError("source went away")
            return b"x" * min(n, 1000)

    with pytest.raises(RuntimeError, match="source went away"):
        store.write_stream("k", Failing())
    assert "k" not in store
    store["k"] = b"after"
    assert bytes(store["k"]) == b"after"


def test_write_stream_refuses_text_files(store, tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("hello")
    with open(p, "r") as f, pytest.raises(TypeError, match="binary"):
        store.write_stream("k", f)
    assert "k" not in store


def test_open_stream_reads_seeks_and_readinto(store):
    data = bytes(range(256)) * 40
    store["k"] = data
    s = store.open_stream("k")
    assert s.readable() and s.seekable() and not s.writable()
    assert isinstance(s, io.RawIOBase)
    assert s.read(10) == data[:10]
    buf = bytearray(20)
    assert s.readinto(buf) == 20 and bytes(buf) == data[10:30]
    arr = np.zeros(8, dtype=np.uint8)
    assert s.readinto(arr) == 8 and arr.tobytes() == data[30:38]
    assert s.seek(-5, io.SEEK_END) == len(data) - 5
    assert s.read() == data[-5:]
    assert s.read() == b""
    assert s.readinto(bytearray(4)) == 0
    assert s.seek(100) == 100 and s.tell() == 100
    assert s.seek(10, io.SEEK_CUR) == 110
    assert s.read(3) == data[110:113]
    s.seek(len(data) + 100)
    assert s.read(5) == b""
    with pytest.raises(ValueError):
        s.seek(-1)
    assert bytes(s.getbuffer()) == data
    s.close()
    with pytest.raises(ValueError):
        s.read()


def test_open_stream_wrapped_in_buffered_reader(store):
    store["k"] = b"line one\nline two\n"
    with io.BufferedReader(store.open_stream("k")) as f:
        assert f.readline() == b"line one\n"
        assert list(f) == [b"line two\n"]


def test_open_stream_missing_key(store):
    with pytest.raises(KeyError):
        store.open_stream("nope")
