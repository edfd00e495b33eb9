"""The exceptions of mmblob.

Every failure of the store is one of these, a ``KeyError`` (a key that holds
no value), or an ``OSError`` subclass carrying the ``errno`` of a failed
system call (``FileNotFoundError``, ``PermissionError``, disk full as
``errno.ENOSPC``, ...). Wrong argument types raise ``TypeError``.
"""

from __future__ import annotations

__all__ = [
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


class Error(Exception):
    """Base class of every mmblob-specific error."""


class ClosedError(Error, ValueError):
    """The store was closed; open it again to use it. Attribute: ``path``."""

    path: str


class LockedError(Error):
    """Another handle, in this or another process, holds the store's write
    lock. Close it first, or open with ``read_only=True``. Attribute: ``path``."""

    path: str


class NotAStoreError(Error):
    """The path is not an mmblob store (a directory, or a file of some other
    kind); the file was left unchanged. Attribute: ``path``."""

    path: str


class UnsupportedVersionError(NotAStoreError):
    """The store was written by a newer format version. Attributes:
    ``path``, ``version``."""

    version: int


class CorruptError(Error):
    """Bytes of the store are damaged (a checksum mismatch or an unreadable
    entry). Attribute: ``offset`` (file offset of the damage)."""

    offset: int


class ReadOnlyError(Error):
    """A write through a store opened with ``read_only=True``. Attribute:
    ``path``."""

    path: str


class InvalidKeyError(Error, ValueError):
    """A key is empty or longer than 65,535 bytes. Attribute: ``length``."""

    length: int


class UsageError(Error, ValueError):
    """A call the store cannot honour: a value too large for the format,
    copying a key onto the same store, and similar misuse."""
