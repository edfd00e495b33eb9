import os
import shutil
import tempfile

import numpy as np

import mmblob

path = os.path.join(tempfile.mkdtemp(), "vectors.mmblob")

with mmblob.open(path) as store:
    # Values are any bytes-like object; keys are bytes or str.
    store["greeting"] = b"hello"
    store["embedding/1"] = np.arange(128, dtype=np.float32)
    store["embedding/2"] = np.ones(128, dtype=np.float32)
    # One atomic batch: after a crash, all three keys or none.
    store.update({"a": b"1", "b": b"2", "c": bytearray(b"3")})

    view = store["greeting"]                     # a read-only memoryview of the map
    assert bytes(view) == b"hello"
    vec = store.array("embedding/1", np.float32)  # zero-copy numpy view
    assert vec[3] == 3.0 and not vec.flags.writeable
    batch = store.stack(["embedding/1", "embedding/2"], np.float32, (128,))
    assert batch.shape == (2, 128)               # one new array, gathered in parallel

    with open(os.path.join(os.path.dirname(path), "copy.bin"), "wb") as out:
        shutil.copyfileobj(store.open_stream("embedding/2"), out)

    del store["a"]
    print(store, sorted(store.keys()))
    print(store.stats())

# The array outlives the store: it keeps its bytes mapped.
print(vec[:4])
