"""Side-by-side benchmark of mmblob from Python.

Compares mmblob with LMDB (the `lmdb` package), SQLite (`sqlite3`), one file
per value, and numpy `.npy` files / `np.memmap`, on the workloads of the
Python issue, and prints a table of medians.

    python python/bench.py [--dir DIR] [--repeat N] [--quick]

Every engine gets the same durability: each write call reaches the OS
before it returns (survives a crash of the process, not of the machine):
mmblob durability="flush", LMDB sync=False (writes through its map),
SQLite WAL with synchronous=OFF, plain files without fsync.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time

import numpy as np

import mmblob

try:
    import lmdb
except ImportError:  # pragma: no cover - reported in the table
    lmdb = None


#: The clock: wall time, or CPU time of the process (user + system, all
#: threads), which a machine shared with other jobs disturbs far less.
CLOCK = time.perf_counter


def median_time(fn, repeat, number=1):
    """Median over `repeat` runs of the time of one `fn()` call (each run
    times `number` calls in a row), in seconds."""
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = CLOCK()
        for _ in range(number):
            fn()
        times.append((CLOCK() - t0) / number)
    return statistics.median(times)


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fmt_time(seconds):
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


class Bench:
    def __init__(self, root, repeat, quick):
        self.root = root
        self.repeat = repeat
        self.quick = quick
        self.rows = []  # (workload, unit, {engine: seconds}, note)

    def path(self, name):
        return os.path.join(self.root, name)

    def add(self, workload, results, note=""):
        self.rows.append((workload, results, note))
        line = ", ".join(f"{k} {fmt_time(v)}" for k, v in results.items())
        print(f"  {workload}: {line} {note}", file=sys.stderr, flush=True)

    # -- 1 GiB float32 value viewed as an array --------------------------------
    def big_array(self):
        size = (256 << 20) if self.quick else (1 << 30)
        data = np.ones(size // 4, dtype=np.float32)
        res, notes = {}, []
        with mmblob.open(self.path("big.mmblob")) as s:
            s["big"] = data
        with mmblob.open(self.path("big.mmblob"), read_only=True) as s:
            before = rss()
            res["mmblob"] = median_time(lambda: s.array("big", np.float32), self.repeat, 100)
            notes.append(f"mmblob RSS +{(rss() - before) >> 20} MiB")
        if lmdb:
            env = lmdb.open(self.path("big.lmdb"), map_size=size * 3, sync=False)
            with env.begin(write=True) as txn:
                txn.put(b"big", data.tobytes())
            with env.begin(buffers=True) as txn:
                before = rss()
                res["lmdb"] = median_time(
                    lambda: np.frombuffer(txn.get(b"big"), np.float32), self.repeat, 100
                )
                notes.append(f"lmdb RSS +{(rss() - before) >> 20} MiB")
            env.close()
        np.save(self.path("big.npy"), data)
        before = rss()
        res["np.load(mmap_mode=r)"] = median_time(
            lambda: np.load(self.path("big.npy"), mmap_mode="r"), self.repeat, 100
        )
        notes.append(f"np.memmap RSS +{(rss() - before) >> 20} MiB")
        res["file read (np.fromfile)"] = median_time(
            lambda: np.fromfile(self.path("big.npy"), dtype=np.float32), max(3, self.repeat // 2)
        )
        del data
        self.add(f"array() of a {size >> 20} MiB float32 value", res, "; ".join(notes))
        for name in ("big.mmblob", "big.npy"):
            os.remove(self.path(name))
        shutil.rmtree(self.path("big.lmdb"), ignore_errors=True)

    # -- small values ----------------------------------------------------------
    def setup_small(self, n, size):
        rng = np.random.default_rng(7)
        keys = [f"key:{i:08d}".encode() for i in range(n)]
        values = [rng.bytes(size) for _ in range(n)]
        return keys, values

    def random_reads(self):
        n = 20_000 if self.quick else 100_000
        keys, values = self.setup_small(n, 64)
        order = [keys[i] for i in np.random.default_rng(1).integers(0, n, n)]
        res = {}
        with mmblob.open(self.path("small.mmblob")) as s:
            for i in range(0, n, 10_000):
                s.update(zip(keys[i : i + 10_000], values[i : i + 10_000]))

            def run():
                for k in order:
                    s[k]

            res["mmblob store[k]"] = median_time(run, self.repeat) / n

            def run_get():
                get = s.get
                for k in order:
                    get(k)

            res["mmblob get(k)"] = median_time(run_get, self.repeat) / n

            def run_many():
                s.get_many(order)

            res["mmblob get_many"] = median_time(run_many, self.repeat) / n
        if lmdb:
            env = lmdb.open(self.path("small.lmdb"), map_size=1 << 30, sync=False)
            with env.begin(write=True) as txn:
                for k, v in zip(keys, values):
                    txn.put(k, v)
            with env.begin() as txn:

                def run_lmdb():
                    get = txn.get
                    for k in order:
                        get(k)

                res["lmdb txn.get"] = median_time(run_lmdb, self.repeat) / n
            env.close()
        db = self.sqlite("small.sqlite")
        db.executemany("INSERT INTO kv VALUES (?, ?)", zip(keys, values))
        db.commit()

        def run_sqlite():
            ex = db.execute
            for k in order[: n // 10]:
                ex("SELECT v FROM kv WHERE k = ?", (k,)).fetchone()

        res["sqlite SELECT"] = median_time(run_sqlite, self.repeat) / (n // 10)
        db.close()
        d = self.files_dir("small.files", keys[: n // 10], values[: n // 10])

        def run_files():
            for k in order[: n // 100]:
                try:
                    with open(os.path.join(d, k.decode()), "rb") as f:
                        f.read()
                except FileNotFoundError:
                    pass

        res["file per value"] = median_time(run_files, self.repeat) / (n // 100)
        self.add("random read of a 64-byte value (per read)", res)

    def sqlite(self, name):
        db = sqlite3.connect(self.path(name))
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID")
        return db

    def files_dir(self, name, keys, values):
        d = self.path(name)
        os.makedirs(d, exist_ok=True)
        for k, v in zip(keys, values):
            with open(os.path.join(d, k.decode()), "wb") as f:
                f.write(v)
        return d

    # -- stack of embeddings ---------------------------------------------------
    def stack(self):
        n, dim, batch = 100_000, 128, 1000
        rng = np.random.default_rng(3)
        emb = rng.standard_normal((n, dim)).astype(np.float32)
        keys = [f"emb:{i:08d}".encode() for i in range(n)]
        res = {}
        picks = [rng.integers(0, n, batch) for _ in range(self.repeat * 5)]
        pick_keys = [[keys[i] for i in p] for p in picks]

        def cycle(fn, items):
            it = iter(items * 2)
            return lambda: fn(next(it))

        with mmblob.open(self.path("emb.mmblob")) as s:
            for i in range(0, n, 10_000):
                s.update(zip(keys[i : i + 10_000], emb[i : i + 10_000]))
            s.stack(keys, np.float32, (dim,))  # warm: every page mapped once, as for lmdb below
            res["mmblob stack"] = median_time(
                cycle(lambda ks: s.stack(ks, np.float32, (dim,)), pick_keys), self.repeat * 5
            )
            res["mmblob array per key + np.stack"] = median_time(
                cycle(lambda ks: np.stack([s.array(k, np.float32) for k in ks]), pick_keys),
                self.repeat * 5,
            )
        if lmdb:
            env = lmdb.open(self.path("emb.lmdb"), map_size=1 << 30, sync=False)
            with env.begin(write=True) as txn:
                for k, row in zip(keys, emb):
                    txn.put(k, row.tobytes())
            with env.begin(buffers=True) as txn:
                for _ in txn.cursor():  # warm
                    pass
                res["lmdb get + np.frombuffer"] = median_time(
                    cycle(
                        lambda ks: np.stack([np.frombuffer(txn.get(k), np.float32) for k in ks]),
                        pick_keys,
                    ),
                    self.repeat * 5,
                )
            env.close()
        db = self.sqlite("emb.sqlite")
        db.executemany("INSERT INTO kv VALUES (?, ?)", ((k, r.tobytes()) for k, r in zip(keys, emb)))
        db.commit()
        res["sqlite SELECT + np.frombuffer"] = median_time(
            cycle(
                lambda ks: np.stack(
                    [
                        np.frombuffer(
                            db.execute("SELECT v FROM kv WHERE k = ?", (k,)).fetchone()[0],
                            np.float32,
                        )
                        for k in ks
                    ]
                ),
                pick_keys,
            ),
            self.repeat,
        )
        db.close()
        d = self.path("emb.files")
        os.makedirs(d, exist_ok=True)
        for k, row in zip(keys[:20_000], emb[:20_000]):
            row.tofile(os.path.join(d, k.decode()))
        small_picks = [[keys[i] for i in p % 20_000] for p in picks]
        res["file per value (np.fromfile)"] = median_time(
            cycle(
                lambda ks: np.stack([np.fromfile(os.path.join(d, k.decode()), np.float32) for k in ks]),
                small_picks,
            ),
            self.repeat,
        )
        np.save(self.path("emb.npy"), emb)
        mm = np.load(self.path("emb.npy"), mmap_mode="r")
        res["np.memmap fancy index"] = median_time(
            cycle(lambda p: mm[np.sort(p)], picks), self.repeat * 5
        )
        self.add(f"stack {batch} random {dim}-float embeddings (per batch)", res)

    # -- writes in batches -----------------------------------------------------
    def writes(self):
        n, batch = 100_000, 1000
        keys, values = self.setup_small(n, 512)
        res = {}

        def fresh(name):
            p = self.path(name)
            if os.path.isdir(p):
                shutil.rmtree(p)
            for suffix in ("", ".index", "-wal", "-shm"):
                if os.path.exists(p + suffix):
                    os.remove(p + suffix)
            return p

        def run_mmblob():
            with mmblob.open(fresh("w.mmblob")) as s:
                for i in range(0, n, batch):
                    s.update(zip(keys[i : i + batch], values[i : i + batch]))

        res["mmblob update"] = median_time(run_mmblob, self.repeat)

        if lmdb:

            def run_lmdb():
                env = lmdb.open(fresh("w.lmdb"), map_size=1 << 30, sync=False)
                for i in range(0, n, batch):
                    with env.begin(write=True) as txn:
                        txn.cursor().putmulti(zip(keys[i : i + batch], values[i : i + batch]))
                env.close()

            res["lmdb putmulti"] = median_time(run_lmdb, self.repeat)

        def run_sqlite():
            db = self.sqlite(os.path.basename(fresh("w.sqlite")))
            for i in range(0, n, batch):
                db.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", zip(keys[i : i + batch], values[i : i + batch]))
                db.commit()
            db.close()

        res["sqlite executemany"] = median_time(run_sqlite, self.repeat)

        def run_files():
            d = fresh("w.files")
            self.files_dir(os.path.basename(d), keys[: n // 100], values[: n // 100])

        res["file per value (1 k files, ×100)"] = median_time(run_files, self.repeat) * 100
        arr = np.frombuffer(b"".join(values), np.uint8).reshape(n, 512)
        res["np.save of all (one file)"] = median_time(
            lambda: np.save(fresh("w.npy"), arr), self.repeat
        )
        self.add(f"{n // 1000} k writes of 512 B in batches of {batch} (total)", res)

    # -- iterate everything ----------------------------------------------------
    def iterate(self):
        n = 100_000
        keys, values = self.setup_small(n, 512)
        res = {}
        with mmblob.open(self.path("it.mmblob")) as s:
            for i in range(0, n, 10_000):
                s.update(zip(keys[i : i + 10_000], values[i : i + 10_000]))

            def run():
                for _k, _v in s.items():
                    pass

            res["mmblob items()"] = median_time(run, self.repeat)
        if lmdb:
            env = lmdb.open(self.path("it.lmdb"), map_size=1 << 30, sync=False)
            with env.begin(write=True) as txn:
                txn.cursor().putmulti(zip(keys, values))
            with env.begin() as txn:

                def run_lmdb():
                    for _k, _v in txn.cursor():
                        pass

                res["lmdb cursor"] = median_time(run_lmdb, self.repeat)
            with env.begin(buffers=True) as txn:

                def run_lmdb_buf():
                    for _k, _v in txn.cursor():
                        pass

                res["lmdb cursor (buffers)"] = median_time(run_lmdb_buf, self.repeat)
            env.close()
        db = self.sqlite("it.sqlite")
        db.executemany("INSERT INTO kv VALUES (?, ?)", zip(keys, values))
        db.commit()

        def run_sqlite():
            for _row in db.execute("SELECT k, v FROM kv"):
                pass

        res["sqlite SELECT *"] = median_time(run_sqlite, self.repeat)
        db.close()
        d = self.files_dir("it.files", keys[: n // 10], values[: n // 10])

        def run_files():
            for e in os.scandir(d):
                with open(e.path, "rb") as f:
                    f.read()

        res["file per value (×10)"] = median_time(run_files, self.repeat) * 10
        np.save(self.path("it.npy"), np.frombuffer(b"".join(values), np.uint8).reshape(n, 512))
        mm = np.load(self.path("it.npy"), mmap_mode="r")

        def run_npy():
            for _row in mm:
                pass

        res["np.memmap rows"] = median_time(run_npy, self.repeat)
        self.add(f"iterate all {n // 1000} k items of 512 B (total)", res)


def table(bench):
    out = []
    for workload, results, note in bench.rows:
        out.append(f"\n**{workload}**" + (f" — {note}" if note else ""))
        out.append("")
        out.append("| engine | median | vs mmblob |")
        out.append("|---|---:|---:|")
        base = next(iter(results.values()))
        for engine, t in results.items():
            ratio = "—" if t is None or not base else f"{t / base:.2f}×"
            out.append(f"| {engine} | {fmt_time(t)} | {ratio} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", help="where to put the files (default: a temporary directory)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smaller data, for a smoke run")
    ap.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall time, or CPU time of this process (steadier on a busy machine)",
    )
    ap.add_argument(
        "--only", nargs="*", default=["big_array", "random_reads", "stack", "writes", "iterate"]
    )
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    root = tempfile.mkdtemp(prefix="mmblob-bench-", dir=args.dir)
    try:
        bench = Bench(root, args.repeat, args.quick)
        for name in args.only:
            print(f"running {name}", file=sys.stderr, flush=True)
            getattr(bench, name)()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"lmdb {lmdb.__version__ if lmdb else 'missing'}, sqlite {sqlite3.sqlite_version}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; {args.clock} clock; medians of {args.repeat}+ runs "
        "(ratio > 1: slower than the first row)"
    )
    print(table(bench))


if __name__ == "__main__":
    main()
