"""Threads and processes: shared stores, read-only readers, crashed writers."""

import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np

import mmblob


def test_eight_readers_and_one_writer(store):
    keys = [f"k{i}" for i in range(200)]
    store.update({k: np.full(64, i, dtype=np.int32) for i, k in enumerate(keys)})
    stop = threading.Event()
    errors = []
    reads = [0] * 8

    def reader(n):
        try:
            rng = np.random.default_rng(n)
            while not stop.is_set():
                i = int(rng.integers(0, len(keys)))
                a = store.array(keys[i], np.int32)
                # Values are rewritten with the same contents: any torn or
                # misplaced read shows up as a wrong number.
                if not (a == i).all():
                    errors.append((keys[i], a[:4]))
                batch = store.stack(keys[i : i + 5], np.int32, 64)
                if not (batch[:, 0] == np.arange(i, i + len(batch))).all():
                    errors.append(("stack", i))
                reads[n] += 1
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def writer():
        try:
            for round in range(30):
                store.update({k: np.full(64, i, dtype=np.int32) for i, k in enumerate(keys[:50])})
                store[f"extra{round}"] = os.urandom(1000)
                if round % 10 == 9:
                    store.compact()
        except Exception as e:  # pragma: no cover
            errors.append(e)
        finally:
            stop.set()

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:5]
    assert all(r > 0 for r in reads)
    assert len(store) == 230


def test_close_while_other_threads_use_the_store(path):
    s = mmblob.open(path)
    s.update({f"k{i}": b"v" * 100 for i in range(100)})
    results = []

    def worker():
        try:
            while True:
                s["k5"]
                s["w"] = b"x"
        except mmblob.ClosedError:
            results.append("closed")
        except Exception as e:  # pragma: no cover
            results.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    s.close()
    for t in threads:
        t.join(timeout=30)
    assert results == ["closed"] * 4
    with mmblob.open(path) as again:  # the write lock was released
        assert bytes(again["k5"]) == b"v" * 100


def run_child(code, *args, **kw):
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_reader_process_sees_new_entries_after_refresh(path):
    with mmblob.open(path) as w:
        w["first"] = b"1"
        child = run_child(
            """
            import sys, mmblob
            with mmblob.open(sys.argv[1], read_only=True) as r:
                print(len(r), bytes(r["first"]).decode(), flush=True)
                for line in sys.stdin:
                    r.refresh()
                    print(len(r), bytes(r.get("second", b"-")).decode(), flush=True)
            """,
            path,
        )
        assert child.stdout.readline().split() == ["1", "1"]
        w["second"] = b"2"
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().split() == ["2", "2"]
        w.compact()
        w["third"] = b"3"
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().split() == ["3", "2"]
        child.stdin.close()
        assert child.wait(timeout=60) == 0


def test_sigkilled_writer_loses_nothing_acknowledged(path):
    child = run_child(
        """
        import sys, mmblob
        s = mmblob.open(sys.argv[1])
        i = 0
        while True:
            if i % 3 == 0:
                s.update({f"b{i}-{j}": bytes([i % 256]) * (100 + j) for j in range(5)})
            else:
                s[f"k{i}"] = bytes([i % 256]) * (1000 + i)
            print(i, flush=True)  # acknowledged
            i += 1
        """,
        path,
    )
    acknowledged = -1
    for line in child.stdout:
        acknowledged = int(line)
        if acknowledged >= 300:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    # The child may have acknowledged more lines than we read.
    with mmblob.open(path) as s:
        for i in range(acknowledged + 1):
            if i % 3 == 0:
                for j in range(5):
                    assert bytes(s[f"b{i}-{j}"]) == bytes([i % 256]) * (100 + j)
            else:
                assert bytes(s[f"k{i}"]) == bytes([i % 256]) * (1000 + i)
        # Batches are atomic: every batch is whole or absent.
        for i in range(0, 10_000, 3):
            present = [f"b{i}-{j}" in s for j in range(5)]
            assert all(present) or not any(present), (i, present)
        assert s.verify()["ok"]


def test_close_from_python_code_called_by_the_store_does_not_hang(path):
    s = mmblob.open(path)

    class ClosesTheStore:
        def __init__(self):
            self.chunks = [b"a" * 1000, b"b" * 1000]

        def read(self, n):
            s.close()
            return self.chunks.pop(0) if self.chunks else b""

    # The running write finishes; the store is closed when it returns.
    assert s.write_stream("k", ClosesTheStore()) == 2000
    assert s.closed

    def keys_that_close(store):
        yield "k"
        store.close()
        yield "k"

    with mmblob.open(path) as s2:
        assert bytes(s2["k"]) == b"a" * 1000 + b"b" * 1000
        out = s2.stack(keys_that_close(s2), "u1", 2000)
        assert out.shape == (2, 2000)
        assert s2.closed
    with mmblob.open(path) as s3:  # every lock was released
        assert len(s3) == 1
