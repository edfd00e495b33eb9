"""Bad input raises a typed, actionable exception; the interpreter never crashes."""

import errno
import os

import numpy as np
import pytest

import mmblob


@pytest.mark.parametrize("key", [1, 1.5, None, ["k"], bytearray(b"k"), memoryview(b"k"), ("k",)])
def test_wrong_key_types(store, key):
    with pytest.raises(TypeError, match="keys are bytes or str"):
        store[key] = b"v"
    with pytest.raises(TypeError):
        store[key]
    with pytest.raises(TypeError):
        key in store
    with pytest.raises(TypeError):
        store.get(key)
    with pytest.raises(TypeError):
        del store[key]


def test_invalid_keys(store):
    for key in ("", b"", b"k" * 65536):
        with pytest.raises(mmblob.InvalidKeyError) as info:
            store[key] = b"v"
        assert isinstance(info.value, ValueError)
        assert info.value.length == len(key)
    store[b"k" * 65535] = b"max"
    assert bytes(store[b"k" * 65535]) == b"max"


@pytest.mark.parametrize("value", [1, None, "text", 2.0, object(), [1, 2]])
def test_values_must_be_bytes_like(store, value):
    with pytest.raises(TypeError):
        store["k"] = value
    assert "k" not in store


def test_non_contiguous_buffers_are_refused(store):
    a = np.arange(100, dtype=np.int32)
    with pytest.raises(ValueError, match="C-contiguous"):
        store["k"] = a[::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        store["k"] = np.arange(12).reshape(3, 4).T
    with pytest.raises(ValueError, match="C-contiguous"):
        store["k"] = memoryview(b"abcdef")[::2]
    assert "k" not in store
    store["k"] = np.ascontiguousarray(a[::2])
    assert len(store["k"]) == 200


def test_closed_store(path):
    s = mmblob.open(path)
    s["a"] = b"1"
    a = s["a"]
    s.close()
    s.close()  # twice is fine
    assert s.closed
    calls = [
        lambda: s["a"],
        lambda: s.__setitem__("a", b"2"),
        lambda: len(s),
        lambda: "a" in s,
        lambda: list(s.keys()),
        lambda: s.update(a=b"1"),
        lambda: s.stats(),
        lambda: s.compact(),
        lambda: s.verify(),
        lambda: s.array("a", "u1"),
        lambda: s.stack(["a"], "u1"),
    ]
    for call in calls:
        with pytest.raises(mmblob.ClosedError, match="closed"):
            call()
    assert isinstance(mmblob.ClosedError("x"), ValueError)
    assert bytes(a) == b"1"


def test_read_only_store_refuses_writes(path):
    with mmblob.open(path) as s:
        s["a"] = b"1"
    with mmblob.open(path, read_only=True) as ro:
        assert ro.read_only
        for write in (
            lambda: ro.__setitem__("b", b"2"),
            lambda: ro.__delitem__("a"),
            lambda: ro.update(b=b"2"),
            lambda: ro.rename("a", "b"),
            lambda: ro.compact(),
        ):
            with pytest.raises(mmblob.ReadOnlyError) as info:
                write()
            assert info.value.path == path
        assert bytes(ro["a"]) == b"1"


def test_text_file_is_not_a_store_and_is_left_alone(tmp_path):
    p = tmp_path / "notes.txt"
    text = b"these are my notes, not a store\n" * 10
    p.write_bytes(text)
    with pytest.raises(mmblob.NotAStoreError) as info:
        mmblob.open(p)
    assert info.value.path == str(p)
    assert "not an mmblob store" in str(info.value)
    assert p.read_bytes() == text


def test_directory_is_not_a_store(tmp_path):
    with pytest.raises(mmblob.NotAStoreError):
        mmblob.open(tmp_path)


def test_missing_store_without_create(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        mmblob.open(tmp_path / "nope.mmblob", create=False)
    assert info.value.errno == errno.ENOENT


def test_missing_directory_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        mmblob.open(tmp_path / "no" / "such" / "dir.mmblob")
    assert info.value.errno == errno.ENOENT


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_permission_denied_is_a_permission_error(tmp_path):
    p = tmp_path / "locked.mmblob"
    mmblob.open(p).close()
    p.chmod(0)
    with pytest.raises(PermissionError):
        mmblob.open(p)


def test_second_writer_is_locked_out(path):
    with mmblob.open(path) as s:
        with pytest.raises(mmblob.LockedError) as info:
            mmblob.open(path)
        assert info.value.path == path
        with mmblob.open(path, read_only=True) as ro:
            assert len(ro) == 0


def test_bad_durability(path):
    with pytest.raises(ValueError, match="durability"):
        mmblob.open(path, durability="fast")


def damaged_store(path, n=20):
    with mmblob.open(path) as s:
        for i in range(n):
            s[f"k{i:02}"] = bytes([i]) * 1000
        _, _, addr, _ = s._locate("k05")
        map_start, _, _, _ = s._locate("k05")
        offset = addr - map_start
    with open(path, "r+b") as f:
        f.seek(offset + 10)
        byte = f.read(1)
        f.seek(offset + 10)
        f.write(bytes([byte[0] ^ 0xFF]))
    return offset


def test_damaged_store_is_reported_not_fatal(path):
    offset = damaged_store(path)
    with mmblob.open(path) as s:
        report = s.verify()
        assert not report["ok"]
        [bad] = report["damaged"]
        assert bad["kind"] == "checksum_mismatch" and bad["key"] == b"k05"
        assert bad["start"] <= offset < bad["end"]
        assert s.damage() and s.stats()["damaged"] == 1
        # Every other entry is intact.
        assert bytes(s["k19"]) == bytes([19]) * 1000


def test_damaged_store_is_refused_when_strict(path):
    damaged_store(path)
    with pytest.raises(mmblob.CorruptError) as info:
        mmblob.open(path, strict=True)
    assert isinstance(info.value.offset, int)
    assert isinstance(info.value, mmblob.Error)


def test_garbage_after_the_header(path):
    with mmblob.open(path) as s:
        s["a"] = b"1"
    with open(path, "ab") as f:
        f.write(os.urandom(5000))  # a torn tail: cut off at open
    with mmblob.open(path) as s:
        assert bytes(s["a"]) == b"1"


def test_rename_copy_transfer_of_missing_keys(store, tmp_path):
    with pytest.raises(KeyError):
        store.rename("nope", "x")
    with mmblob.open(tmp_path / "other.mmblob") as other:
        with pytest.raises(KeyError):
            store.copy_to("nope", other)
        with pytest.raises(KeyError):
            store.transfer_to("nope", other)
        with pytest.raises(TypeError):
            store.copy_to("nope", "not a store")


def test_same_store_copy_is_a_usage_error(store):
    store["a"] = b"1"
    with pytest.raises(mmblob.UsageError):
        store.copy_to("a", store)


def test_stack_errors(store):
    store["a"] = np.zeros(4, np.float32)
    store["b"] = np.zeros(5, np.float32)
    with pytest.raises(KeyError) as info:
        store.stack(["a", "missing"], np.float32, 4)
    assert info.value.args == ("missing",)
    with pytest.raises(ValueError, match="16 bytes"):
        store.stack(["a", "b"], np.float32, 4)
    with pytest.raises(TypeError):
        store.stack(["a", 3], np.float32, 4)
    with pytest.raises(TypeError):
        store.stack(["a"], "not a dtype", 4)
    with pytest.raises(ValueError):
        store.stack([], np.float32)


def test_exception_hierarchy():
    for cls in (
        mmblob.ClosedError,
        mmblob.LockedError,
        mmblob.NotAStoreError,
        mmblob.UnsupportedVersionError,
        mmblob.CorruptError,
        mmblob.ReadOnlyError,
        mmblob.InvalidKeyError,
        mmblob.UsageError,
    ):
        assert issubclass(cls, mmblob.Error)


def test_disk_full_is_an_os_error_with_errno_and_the_store_stays_usable(path):
    # RLIMIT_FSIZE makes writes past 1 MiB fail with EFBIG, like a full disk.
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import errno, resource, signal, sys, mmblob
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        s = mmblob.open(sys.argv[1])
        s["small"] = b"x" * 1000
        try:
            s["big"] = b"y" * (2 << 20)
        except OSError as e:
            assert e.errno == errno.EFBIG, e
            assert not isinstance(e, mmblob.Error)
        else:
            raise SystemExit("expected OSError")
        assert "big" not in s
        s["after"] = b"z" * 1000
        s.close()
        s = mmblob.open(sys.argv[1])
        assert bytes(s["small"]) == b"x" * 1000 and bytes(s["after"]) == b"z" * 1000
        assert "big" not in s
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
