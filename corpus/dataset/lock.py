"""An advisory lock that serialises read-modify-write cycles of one dataset's `meta.bin`.

Writers appending files and the maintenance tools (mask, merge, compact) each read
`meta.bin`, change it and replace it; two at once would lose one change. They hold
`<dataset>/.meta.lock` (flock) around the cycle. Readers never take it: `write_meta`
replaces the file atomically, so they see the old index or the new one.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".meta.lock"


@contextmanager
def folder_lock(directory: str | os.PathLike, lock_name: str) -> Iterator[None]:
    """Hold the flock on `directory/lock_name` (creating both if needed) for the `with` body."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / lock_name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def meta_lock(dataset_path: str | os.PathLike):
    """Hold the dataset's meta lock (creating the folder if needed) for the `with` body."""
    return folder_lock(dataset_path, LOCK_FILE)
