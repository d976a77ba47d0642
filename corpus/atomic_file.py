"""Replacing a file atomically: readers see the old content or the new, never a mix, and a
crash leaves the old file intact (temp file in the same folder, fsync, rename). And telling
that a file was replaced or edited."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def new_file_mode() -> int:
    """The mode `open()` gives a new file: 0666 less the process umask (so every file this
    project writes, data files, meta.bin, reports, has the one mode the user asked for)."""
    try:  # Linux: read the umask without changing it (os.umask would race with other threads)
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def create_temp_file(directory: str | os.PathLike, prefix: str, suffix: str = "") -> tuple[int, str]:
    """`tempfile.mkstemp` in `directory`, with the mode of any new file (`new_file_mode`)
    instead of mkstemp's 0600, as the temp file is renamed into place. Returns (fd, path)."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        os.fchmod(fd, new_file_mode())
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    return fd, name


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Replace `path` with `text` (UTF-8, `\\n` line ends kept as given); creates parent folders."""
    write_bytes_atomically(path, text.encode("utf-8"))


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` with `data`; creates parent folders. The new file gets `new_file_mode()`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = create_temp_file(path.parent, prefix=f".{path.name}.")
    try:
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
