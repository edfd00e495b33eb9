"""verify, compact, stats, sync, refresh, rename, copy_to, transfer_to, damage."""

import numpy as np

import mmblob


def test_stats_and_compact(store):
    for i in range(100):
        store[f"k{i}"] = b"x" * 100
    for i in range(50):
        del store[f"k{i}"]
    stats = store.stats()
    assert stats["live_entries"] == 50
    assert stats["live_bytes"] == 5000
    assert stats["reclaimable_bytes"] > 0
    assert stats["read_only"] is False
    result = store.compact()
    assert result["entries_kept"] == 50
    assert result["bytes_after"] < result["bytes_before"]
    after = store.stats()
    assert after["reclaimable_bytes"] == 0
    assert after["file_size"] == result["bytes_after"]
    assert all(bytes(store[f"k{i}"]) == b"x" * 100 for i in range(50, 100))


def test_verify_clean_store(store):
    store.update({f"k{i}": bytes([i]) * i for i in range(50)})
    report = store.verify()
    assert report == {
        "ok": True,
        "entries_checked": 50,
        "bytes_checked": report["bytes_checked"],
        "damaged": [],
    }
    assert report["bytes_checked"] >= sum(range(50))
    assert store.damage() == []


def test_rename(store):
    store["a"] = b"1"
    store["b"] = b"2"
    store.rename("a", "b")
    assert "a" not in store and bytes(store["b"]) == b"1"


def test_copy_and_transfer_between_stores(store, tmp_path):
    store["a"] = np.arange(10, dtype=np.int8)
    store["b"] = b"bee"
    with mmblob.open(tmp_path / "other.mmblob") as other:
        store.copy_to("a", other)
        store.transfer_to("b", other)
        assert bytes(other["a"]) == bytes(store["a"])
        assert bytes(other["b"]) == b"bee"
        assert "b" not in store


def test_sync_and_refresh_of_a_writable_store(store):
    store["a"] = b"1"
    store.sync()
    store.refresh()  # nothing to do for the writer
    assert len(store) == 1


def test_read_only_refresh_in_the_same_process(path):
    with mmblob.open(path) as w, mmblob.open(path, read_only=True) as r:
        w["a"] = b"1"
        r.refresh()
        assert bytes(r["a"]) == b"1"
        w["b"] = b"2"
        assert "b" not in r
        r.refresh()
        assert bytes(r["b"]) == b"2"
        w.compact()
        w["c"] = b"3"
        r.refresh()
        assert sorted(r) == [b"a", b"b", b"c"]


def test_stack(store):
    rng = np.random.default_rng(3)
    rows = {f"e{i}": rng.standard_normal(128).astype(np.float32) for i in range(500)}
    store.update(rows)
    keys = list(rows)[::-1] + ["e7"]
    out = store.stack(keys, np.float32, (128,))
    assert out.shape == (501, 128) and out.dtype == np.float32
    assert out.flags.c_contiguous and out.flags.writeable and out.flags.owndata
    for i, k in enumerate(keys):
        assert (out[i] == rows[k]).all()
    assert store.stack(keys[:3], np.float32).shape == (3, 128)
    assert store.stack(keys[:3], "f4", 128).shape == (3, 128)
    assert store.stack(keys[:3], np.float32, (8, 16)).shape == (3, 8, 16)
    assert store.stack([], np.float32, (128,)).shape == (0, 128)
    assert store.stack((k for k in keys[:2]), np.float32, 128).shape == (2, 128)


def test_large_stack_gathers_in_parallel_and_reports_bad_rows(store):
    # 6000 rows of 1 KiB: above the size where stack() splits work across threads.
    n, dim = 6000, 256
    store.update({f"r{i}": np.full(dim, i, dtype=np.float32) for i in range(n)})
    keys = [f"r{i}" for i in range(n)][::-1]
    out = store.stack(keys, np.float32, dim)
    assert out.shape == (n, dim)
    assert (out[:, 0] == np.arange(n - 1, -1, -1, dtype=np.float32)).all()
    assert (out[:, -1] == out[:, 0]).all()
    store["r4000"] = np.zeros(dim + 1, dtype=np.float32)
    try:
        store.stack(keys, np.float32, dim)
        raise AssertionError("expected ValueError")
    except ValueError as e:
        assert "r4000" in str(e)
    store["r4000"] = np.zeros(dim, dtype=np.float32)
    try:
        store.stack(keys + ["absent"], np.float32, dim)
        raise AssertionError("expected KeyError")
    except KeyError as e:
        assert e.args == ("absent",)
