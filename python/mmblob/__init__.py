"""mmblob: a memory-mapped, zero-copy, append-only blob store.

Open a store with :func:`open`; a :class:`Store` behaves like a ``dict`` of
``bytes``/``str`` keys to binary values. Reads return read-only
``memoryview`` objects and numpy arrays that view the memory map directly
(no copy) and keep the bytes alive for as long as they exist, even after the
store is closed, compacted or garbage-collected.

>>> import mmblob, numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "demo.mmblob")
>>> with mmblob.open(path) as store:
...     store["greeting"] = b"hello"
...     store["embedding"] = np.arange(4, dtype=np.float32)
...     bytes(store["greeting"])
...     store.array("embedding", np.float32)
b'hello'
array([0., 1., 2., 3.], dtype=float32)
"""

from __future__ import annotations

import io
import os
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Iterable, Optional, Tuple, Union

from . import _mmblob
from ._errors import (
    ClosedError,
    CorruptError,
    Error,
    InvalidKeyError,
    LockedError,
    NotAStoreError,
    ReadOnlyError,
    UnsupportedVersionError,
    UsageError,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__version__: str = _mmblob.__version__

Value = _mmblob.Value

__all__ = [
    "open",
    "Store",
    "Value",
    "ValueStream",
    "Error",
    "ClosedError",
    "LockedError",
    "NotAStoreError",
    "UnsupportedVersionError",
    "CorruptError",
    "ReadOnlyError",
    "InvalidKeyError",
    "UsageError",
]

Key = Union[bytes, str]
PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

_MISSING = object()


class Store(_mmblob.StoreBase):
    """A store file: a mutable mapping of ``bytes``/``str`` keys to binary values.

    Made by :func:`open`. ``store[key]`` returns a read-only ``memoryview``
    of the map (zero-copy); ``store[key] = value`` takes any C-contiguous
    buffer (``bytes``, ``bytearray``, ``memoryview``, numpy arrays) without
    copying it first. Keys come back as ``bytes``. The store is safe to
    share between threads; long calls release the GIL.
    """

    __slots__ = ("__weakref__",)

    def array(self, key: Key, dtype: Any, shape: Any = None) -> "np.ndarray":
        """The value of ``key`` as a read-only numpy array viewing the map (no copy).

        ``dtype`` is anything ``numpy.dtype`` accepts; ``shape`` (an int or a
        tuple, ``-1`` allowed) defaults to one dimension. The array keeps its
        bytes alive after ``close()``, ``compact()`` and garbage collection of
        the store. Raises ``KeyError`` when missing, ``ValueError`` when the
        value's length does not fit ``dtype`` and ``shape``.
        """
        import numpy as np

        value = self.value(key)
        dt = np.dtype(dtype)
        size = len(memoryview(value))
        if dt.itemsize == 0 or size % dt.itemsize:
            raise ValueError(
                f"value of {size} bytes is not a whole number of {dt.itemsize}-byte {dt} items"
            )
        # numpy's stubs list a few buffer types; any buffer works at run time.
        array: "np.ndarray" = np.frombuffer(value, dtype=dt)  # type: ignore[call-overload]
        if shape is not None:
            array = array.reshape(shape)
        return array

    def open_stream(self, key: Key) -> "ValueStream":
        """A readable, seekable binary file object over the value of ``key``.

        Reads copy straight from the map into the caller's buffer
        (``readinto``) or into the returned ``bytes``; works with
        ``shutil.copyfileobj``. ``KeyError`` when missing.
        """
        return ValueStream(self.value(key))

    def pop(self, key: Key, default: Any = _MISSING) -> Any:
        """Removes ``key`` and returns a copy of its value (``bytes``), or ``default``."""
        view = self.get(key)
        if view is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        data = bytes(view)
        self.delete(key)
        return data

    def setdefault(self, key: Key, default: Any = b"") -> memoryview:
        """``store[key]`` if present, else stores ``default`` and returns it as a view."""
        view: Optional[memoryview] = self.get(key)
        if view is None:
            self[key] = default
            view = self[key]
        return view

    def clear(self) -> None:
        """Deletes every key, in one atomic batch."""
        self.delete_many(list(self.keys()))

    def popitem(self) -> Tuple[bytes, bytes]:
        """Removes some ``(key, value)`` pair and returns it (value copied)."""
        for key in self.keys():
            return key, self.pop(key)
        raise KeyError("popitem(): store is empty")

    def __eq__(self, other: object) -> bool:
        return self is other

    __hash__ = object.__hash__


MutableMapping.register(Store)


class ValueStream(io.RawIOBase):
    """A read-only, seekable binary file over one stored value.

    Holds the value's bytes mapped until closed. ``readinto`` copies from the
    map into the caller's buffer; ``read`` into the returned ``bytes``;
    ``getbuffer()`` returns the whole value as a memoryview without copying.
    """

    def __init__(self, value: Any) -> None:
        super().__init__()
        self._view: memoryview = memoryview(value)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _check(self) -> memoryview:
        if self.closed:
            raise ValueError("I/O operation on closed stream")
        return self._view

    def readinto(self, buffer: Any) -> int:
        view = self._check()
        with memoryview(buffer) as target:
            target = target.cast("B")
            n = max(0, min(len(target), len(view) - self._pos))
            target[:n] = view[self._pos : self._pos + n]
        self._pos += n
        return n

    def read(self, size: Optional[int] = -1) -> bytes:
        view = self._check()
        start = min(self._pos, len(view))
        end = len(view) if size is None or size < 0 else min(len(view), start + size)
        self._pos = max(self._pos, end)
        return view[start:end].tobytes()

    def readall(self) -> bytes:
        return self.read(-1)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        view = self._check()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = len(view) + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def tell(self) -> int:
        self._check()
        return self._pos

    def getbuffer(self) -> memoryview:
        """The whole value as a read-only memoryview (no copy)."""
        return self._check()

    def close(self) -> None:
        if not self.closed:
            self._view.release()
        super().close()


def open(  # noqa: A001 - mirrors builtins.open, as the issue names it
    path: PathLike,
    *,
    durability: str = "flush",
    read_only: bool = False,
    create: bool = True,
    strict: bool = False,
) -> Store:
    """Opens the store at ``path`` (creating it unless ``create=False``).

    ``durability``: ``"none"``, ``"flush"`` (default: every write reaches the
    OS before returning, so a process crash loses nothing acknowledged) or
    ``"sync"`` (every write is on stable storage, ``fdatasync``).
    ``read_only=True`` opens without the write lock, alongside a writer in
    another process; call :meth:`Store.refresh` to see its new entries.
    ``strict=True`` checks every checksum and refuses a damaged store.

    Raises :class:`LockedError` when another handle writes to the store,
    :class:`NotAStoreError` for a file that is not a store (left unchanged),
    :class:`CorruptError` for a damaged store with ``strict=True``,
    ``FileNotFoundError`` with ``create=False`` and no file.
    """
    return Store(
        os.fspath(path),
        durability=durability,
        read_only=read_only,
        create=create,
        strict=strict,
    )
