import os

import pytest

import mmblob


@pytest.fixture
def path(tmp_path):
    """Path of a store file that does not exist yet."""
    return os.path.join(str(tmp_path), "test.mmblob")


@pytest.fixture
def store(path):
    """A fresh writable store, closed after the test."""
    s = mmblob.open(path)
    yield s
    s.close()
