"""Writing one data file into a dataset: `build_dataset(path, name) as writer: writer.write(obj)`.

Byte-compatible with CPM-Bee's `DatasetBuilder`: the same records, blocks, zero fill and
`meta.bin` line, plus extra keys CPM-Bee's reader ignores (`format_version`, `serializer`,
`checksum`, and whatever the caller adds). The file is written under a temporary name and
renamed into place only when the `with` block ends cleanly, then registered in `meta.bin`;
on an exception nothing is registered and the partial file is removed.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import struct
from pathlib import Path
from types import TracebackType
from typing import Any

from schemas import DEFAULT_BLOCK_SIZE, FileInfo
from schemas.fileinfo import file_name_problem

from corpus.atomic_file import create_temp_file
from corpus.dataset.blockfile import HEADER_SIZE, RECORD_MAGIC, RECORD_OVERHEAD, max_payload_size
from corpus.dataset.lock import meta_lock
from corpus.dataset.meta import META_FILE, meta_path, read_meta, write_meta
from corpus.dataset.serializer import (
    PICKLE_PROTOCOL,
    PickleSerializer,
    Serializer,
    get_serializer,
    payload_kind,
    serializer_name,
)

FORMAT_VERSION = 1  # recorded as `format_version`; CPM-Bee's meta.bin has no version field
CHECKSUM_ALGORITHM = "sha256"
_FLUSH_BYTES = 4 << 20  # buffer this much before a write syscall
_HEADER = struct.Struct("<BI")  # magic, payload length


class RecordTooLarge(ValueError):
    """A record that cannot fit in one block."""


def check_file_name(dbname: str) -> None:
    """A data file name is a plain name inside the dataset folder. Raises ValueError otherwise."""
    if file_name_problem(dbname) is not None or dbname == META_FILE or dbname.startswith("."):
        raise ValueError(
            f"bad data file name {dbname!r}: use a plain file name (no path separators, not starting with '.', not {META_FILE})"
        )


class DatasetWriter:
    """Appends records to one data file; made by `build_dataset`, not directly.

    `nlines`, `nbytes` (4 + payload per record) and `nblocks` count what was written so far.
    """

    def __init__(self, file: Any, block_size: int, serializer: Serializer, source: str) -> None:
        self._file = file
        self._block_size = block_size
        self._max_payload = max_payload_size(block_size)
        self.serializer = serializer
        # pickle.dumps directly (a C partial, no Python frame): the writer's hot path
        self._serialize = (
            functools.partial(pickle.dumps, protocol=PICKLE_PROTOCOL)
            if isinstance(serializer, PickleSerializer)
            else serializer.serialize
        )
        name = serializer_name(serializer)
        self._sniff = name not in ("pickle", "json")  # raw or foreign payloads: look at each one
        self._source = source
        self._buffer = bytearray()
        self._hash = hashlib.new(CHECKSUM_ALGORITHM)
        self._inblock_offset = 0
        self._nbytes = 0
        self._nlines = 0
        self._nblocks = 1  # a file has at least one block, even with no records (as CPM-Bee)
        self._kinds: set[str] = set() if self._sniff else {name}
        self._closed = False

    def write(self, obj: Any) -> None:
        """Serialize `obj` and append it as one record.

        Raises RecordTooLarge (a ValueError) when its payload cannot fit in a block; the
        writer is unchanged then, so a caller may skip the record and go on.
        """
        if self._closed:
            raise ValueError(f"{self._source}: writer is closed")
        payload = self._serialize(obj)
        size = len(payload)
        if size > self._max_payload:
            raise RecordTooLarge(
                f"{self._source}: record {self._nlines}: payload of {size} bytes does not fit in a block of "
                f"{self._block_size} bytes (at most {self._max_payload}); use a larger block_size"
            )
        buffer = self._buffer
        if self._inblock_offset + RECORD_OVERHEAD + size > self._block_size:
            # the rest of the block stays zero: a reader meets 0x00 and moves to the next block
            buffer += bytes(self._block_size - self._inblock_offset)
            self._inblock_offset = 0
            self._nblocks += 1
        buffer += _HEADER.pack(RECORD_MAGIC, size)
        buffer += payload
        self._inblock_offset += HEADER_SIZE + size
        self._nbytes += 4 + size
        self._nlines += 1
        if self._sniff and len(self._kinds) < 2:
            self._kinds.add(payload_kind(payload))
        if len(buffer) >= _FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        self._hash.update(self._buffer)
        self._file.write(self._buffer)
        self._buffer.clear()

    def finish(self) -> str:
        """Zero-fill the last block, flush and fsync. Returns the checksum `sha256:<hex>`."""
        if not self._closed:
            self._buffer += bytes(self._block_size - self._inblock_offset)
            self._flush()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._closed = True
        return f"{CHECKSUM_ALGORITHM}:{self._hash.hexdigest()}"

    def payload_kind(self) -> str | None:
        """`pickle`, `json` or `mixed` for what was written; None when nothing was."""
        if not self._kinds or not self._nlines:
            return None
        return next(iter(self._kinds)) if len(self._kinds) == 1 else "mixed"

    @property
    def nbytes(self) -> int:
        return self._nbytes

    @property
    def nlines(self) -> int:
        return self._nlines

    @property
    def nblocks(self) -> int:
        return self._nblocks


class DatasetBuilder:
    """The context manager behind `build_dataset`; see there."""

    def __init__(
        self,
        path: str | os.PathLike,
        dbname: str,
        block_size: int = DEFAULT_BLOCK_SIZE,
        serializer: str | Serializer | None = "pickle",
        extra_meta: dict[str, Any] | None = None,
    ) -> None:
        check_file_name(dbname)
        if block_size <= RECORD_OVERHEAD:
            raise ValueError(f"block_size must be more than {RECORD_OVERHEAD} bytes, got {block_size}")
        self._path = Path(path)
        self._dbname = dbname
        self._block_size = block_size
        self.serializer = get_serializer(serializer, default="pickle")
        self._extra_meta = dict(extra_meta or {})
        self._check_name_free()
        self._writer: DatasetWriter | None = None
        self._tmp_name: str | None = None

    def _check_name_free(self) -> None:
        if meta_path(self._path).exists():
            if any(info.file_name == self._dbname for info in read_meta(self._path)):
                raise FileExistsError(f"{self._path}: a data file named {self._dbname!r} is already in {META_FILE}")
        if (self._path / self._dbname).exists():
            raise FileExistsError(f"{self._path / self._dbname}: file exists (not in {META_FILE}); remove it or pick another name")

    def __enter__(self) -> DatasetWriter:
        self._path.mkdir(parents=True, exist_ok=True)
        fd, self._tmp_name = create_temp_file(self._path, prefix=f".{self._dbname}.", suffix=".tmp")
        self._writer = DatasetWriter(os.fdopen(fd, "wb"), self._block_size, self.serializer, str(self._path / self._dbname))
        return self._writer

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        writer, tmp_name = self._writer, self._tmp_name
        assert writer is not None and tmp_name is not None, "__exit__ without __enter__"
        self._writer = self._tmp_name = None
        try:
            if exc_type is not None:
                return
            checksum = writer.finish()
            writer._file.close()
            self._register(writer, tmp_name, checksum)
        finally:
            if not writer._file.closed:
                writer._file.close()
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def _register(self, writer: DatasetWriter, tmp_name: str, checksum: str) -> None:
        final = self._path / self._dbname
        with meta_lock(self._path):
            infos = read_meta(self._path) if meta_path(self._path).exists() else []
            self._check_name_free()  # another writer may have taken the name meanwhile
            begin = infos[-1].block_end if infos else 0
            extra = {
                "format_version": FORMAT_VERSION,
                "serializer": writer.payload_kind() or serializer_name(self.serializer) or "unknown",
                "checksum": checksum,
                **self._extra_meta,
            }
            info = FileInfo(
                file_name=self._dbname,
                block_begin=begin,
                block_end=begin + writer.nblocks,
                nbytes=writer.nbytes,
                nlines=writer.nlines,
                mask=False,
                block_size=self._block_size,
                **extra,
            )
            os.replace(tmp_name, final)
            try:
                write_meta(self._path, [*infos, info])
            except BaseException:
                os.unlink(final)
                raise


def build_dataset(
    path: str | os.PathLike,
    dbname: str,
    block_size: int = DEFAULT_BLOCK_SIZE,
    serializer: str | Serializer | None = "pickle",
    extra_meta: dict[str, Any] | None = None,
) -> DatasetBuilder:
    """Open a new data file `dbname` in the dataset at `path` (created if missing) for writing.

    Takes: `block_size` in bytes (16 MiB, CPM-Bee's default); `serializer` `"pickle"`
    (CPM-Bee's default, protocol 4), `"json"`, `"raw"` (payload bytes) or an object with
    `serialize`; `extra_meta`, extra keys for this file's meta.bin line (e.g. `escaped`).
    Returns a context manager whose `__enter__` gives the `DatasetWriter`.
    Raises FileExistsError when the name is taken, ValueError for a bad name or block size.

        with build_dataset("/data/wiki", "part-0000") as writer:
            writer.write({"text": "..."})
    """
    return DatasetBuilder(path, dbname, block_size=block_size, serializer=serializer, extra_meta=extra_meta)
