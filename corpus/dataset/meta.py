"""`meta.bin`: the index of a dataset, one `FileInfo` JSON line per data file.

Read by `read_meta`, written (atomically) by `write_meta`.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import BinaryIO

from corpus.atomic_file import write_text_atomically
from schemas import FileInfo, SchemaError, validate_data

META_FILE = "meta.bin"


class DatasetCorrupt(ValueError):
    """A dataset whose files contradict the format; the message names the file and block."""


def open_regular_fd(path: str | os.PathLike) -> int:
    """`os.open(path, O_RDONLY)` that refuses what is not a regular file (a FIFO would block the
    open and every read; a device never ends). Raises FileNotFoundError, DatasetCorrupt."""
    # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise DatasetCorrupt(f"{path}: not a regular file ({_file_kind(mode)}); a dataset holds plain files only")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular_file(path: str | os.PathLike) -> BinaryIO:
    """`open(path, "rb")` for regular files only (see `open_regular_fd`)."""
    return os.fdopen(open_regular_fd(path), "rb")


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return kind
    return "not a plain file"


def meta_path(dataset_path: str | os.PathLike) -> Path:
    return Path(dataset_path) / META_FILE


def read_meta(dataset_path: str | os.PathLike) -> list[FileInfo]:
    """The `FileInfo`s of a dataset, in block order.

    Raises FileNotFoundError when there is no `meta.bin`, DatasetCorrupt when a line is not
    a valid `FileInfo` or the block ranges do not run contiguously from 0.
    """
    path = meta_path(dataset_path)
    with open_regular_file(path) as meta:
        return parse_meta(meta, path)


def parse_meta(lines, path: str | os.PathLike) -> list[FileInfo]:
    """The `FileInfo`s in the byte lines of a meta.bin read from `path` (a local file or, for
    a remote dataset, an object's lines); raises DatasetCorrupt as `read_meta` does."""
    infos: list[FileInfo] = []
    for line_number, raw in enumerate(lines, start=1):
        source = f"{path}:{line_number}"
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as error:
            raise DatasetCorrupt(f"{source}: not UTF-8 text (byte 0x{raw[error.start]:02x} at column {error.start + 1})") from None
        if not line:
            continue
        try:
            infos.append(validate_data(FileInfo, json.loads(line), source))
        except json.JSONDecodeError as error:
            raise DatasetCorrupt(f"{source}: not a JSON object: {error.msg}") from None
        except SchemaError as error:
            raise DatasetCorrupt(str(error)) from None
    check_block_ranges(infos, path)
    return infos


def check_block_ranges(infos: list[FileInfo], source: str | os.PathLike) -> None:
    """Block ranges must start at 0 and be contiguous, and file names unique."""
    expected_begin = 0
    names: set[str] = set()
    for info in infos:
        if info.block_begin != expected_begin:
            raise DatasetCorrupt(
                f"{source}: {info.file_name}: block range starts at {info.block_begin}, "
                f"expected {expected_begin} (ranges must be contiguous from 0)"
            )
        if info.file_name in names:
            raise DatasetCorrupt(f"{source}: {info.file_name}: listed twice")
        names.add(info.file_name)
        expected_begin = info.block_end


def write_meta(dataset_path: str | os.PathLike, infos: list[FileInfo]) -> None:
    """Replace `meta.bin` atomically: a reader sees the old index or the new one, never a mix."""
    check_block_ranges(infos, meta_path(dataset_path))
    write_text_atomically(meta_path(dataset_path), "".join(info.to_line() + "\n" for info in infos))
