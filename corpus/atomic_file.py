"""Replacing a file atomically: readers see the old content or the new, never a mix, and a
crash leaves the old file intact (temp file in the same folder, fsync, rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text_atomically(path: str | os.PathLike, text: str, mode: int = 0o644) -> None:
    """Replace `path` with `text` (UTF-8, `\\n` line ends kept as given); creates parent folders.

    `mode` is applied to the new file (mkstemp makes 0600; these files are read by other jobs).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
