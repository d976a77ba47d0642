"""Replacing a file atomically: readers see the old content or the new, never a mix, and a
crash leaves the old file intact (temp file in the same folder, fsync, rename). And telling
that a file was replaced or edited."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text_atomically(path: str | os.PathLike, text: str, mode: int = 0o644) -> None:
    """Replace `path` with `text` (UTF-8, `\\n` line ends kept as given); creates parent folders."""
    write_bytes_atomically(path, text.encode("utf-8"), mode)


def write_bytes_atomically(path: str | os.PathLike, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data`; creates parent folders.

    `mode` is applied to the new file (mkstemp makes 0600; these files are read by other jobs).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def file_signature(path: str | os.PathLike) -> tuple[int, int, int]:
    """What tells a changed file: mtime (ns), size and inode (an atomic replace changes it), as
    mtimes alone can repeat when two edits fall in one tick of the file system's clock."""
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size, stat.st_ino
