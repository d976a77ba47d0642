"""`verify_dataset`: walk every block of every file and check it against the format and meta.bin.

Checks, per data file: it exists and holds exactly the blocks meta.bin gives it; every
block parses (magic, lengths inside the block, zeros after the end-of-block byte, no empty
block inside a file with records); every payload decodes (pickle through the restricted
unpickler); `nlines`, `nbytes`, and the extra keys `checksum`, `format_version` and
`serializer` agree with what is on disk.

A dataset on an object store (`s3://`, `gs://`, `hdfs://`: a published remote build) is
verified the same way, each block read by a ranged read through Beam's filesystems
(`block_source.RemoteBlocks`), so memory holds one block at a time, never a whole file.
Beam's filesystem options (endpoint, credentials) must be set first
(`corpus.pipeline.remote_output.use_filesystem_options`).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from schemas import FileInfo

from corpus.dataset.blockfile import block_label, iter_block_payloads
from corpus.dataset.block_source import is_remote, join, open_blocks, read_meta_of
from corpus.dataset.meta import DatasetCorrupt
from corpus.dataset.progress import progress_bar as open_progress_bar
from corpus.dataset.serializer import get_serializer, payload_kind
from corpus.dataset.writer import FORMAT_VERSION


@dataclass
class FileCheck:
    """What verify found in one data file."""

    file_name: str
    nblocks: int
    nlines: int
    nbytes: int
    kinds: dict[str, int] = field(default_factory=dict)  # payload kind -> records
    checksum_checked: bool = False


@dataclass
class VerifyReport:
    """A clean dataset: one `FileCheck` per data file."""

    path: Path | str  # a str URL for a remote dataset
    files: list[FileCheck]

    @property
    def nlines(self) -> int:
        return sum(check.nlines for check in self.files)

    @property
    def nbytes(self) -> int:
        return sum(check.nbytes for check in self.files)


def verify_file(dataset_path: Path | str, info: FileInfo, decode: bool = True, advance=lambda n: None) -> FileCheck:
    """Check one data file; see the module docstring. Raises DatasetCorrupt at its first problem."""
    path = join(dataset_path, info.file_name)
    version = info.extra_keys.get("format_version")
    if version is not None and (not isinstance(version, int) or version > FORMAT_VERSION):
        raise DatasetCorrupt(f"{path}: format_version {version!r} is not one this reader knows (<= {FORMAT_VERSION})")
    try:
        blocks = open_blocks(path)
    except FileNotFoundError:
        raise DatasetCorrupt(f"{path}: listed in meta.bin but missing") from None
    try:
        return _verify_open_file(blocks, path, info, decode, advance)
    finally:
        blocks.close()


def _read_block(blocks, path, info: FileInfo, global_block: int) -> bytes:
    """One whole block. Raises DatasetCorrupt when the file ends inside it."""
    data = blocks.read_at((global_block - info.block_begin) * info.block_size, info.block_size)
    if len(data) != info.block_size:
        raise DatasetCorrupt(
            f"{path}: {block_label(info, global_block)}: truncated: the file ends {len(data)} bytes "
            f"into the block (block size {info.block_size}); meta.bin points past the end of the file"
        )
    return data


def _verify_open_file(blocks, path, info: FileInfo, decode: bool, advance) -> FileCheck:
    size = blocks.size
    expected = info.nblocks * info.block_size
    if size > expected:
        raise DatasetCorrupt(f"{path}: {size - expected} bytes beyond the {info.nblocks} blocks meta.bin gives it")
    if size < expected:  # before reading: a short file (or a huge block_size) fails here, not in a read
        first_missing = info.block_begin + size // info.block_size
        raise DatasetCorrupt(
            f"{path}: truncated: meta.bin gives it {info.nblocks} blocks of {info.block_size} bytes "
            f"({expected} bytes), the file has {size} bytes; {block_label(info, first_missing)} is incomplete"
        )
    checksum = info.extra_keys.get("checksum")
    algorithm, _, digest = checksum.partition(":") if isinstance(checksum, str) else ("", "", "")
    hasher = hashlib.new(algorithm) if algorithm in hashlib.algorithms_available else None
    if checksum is not None and hasher is None:
        raise DatasetCorrupt(f"{path}: checksum {checksum!r} is not `<algorithm>:<hex>` with a known algorithm")
    decoder = get_serializer("auto")
    nlines = nbytes = 0
    kinds: Counter[str] = Counter()
    empty_blocks: list[int] = []
    for global_block in range(info.block_begin, info.block_end):
        block = _read_block(blocks, path, info, global_block)  # a short file fails here, naming the block
        if hasher is not None:
            hasher.update(block)
        end = 0
        records_here = 0
        for offset, payload in iter_block_payloads(block, path, info, global_block):
            records_here += 1
            nbytes += 4 + len(payload)
            kind = payload_kind(payload)
            kinds[kind] += 1
            if decode:
                try:
                    decoder.deserialize(payload)
                except Exception as error:
                    raise DatasetCorrupt(
                        f"{path}: {block_label(info, global_block)}: record at offset {offset} does not decode "
                        f"as {kind}: {type(error).__name__}: {error}"
                    ) from None
            end = offset + 5 + len(payload)
        if len(block.rstrip(b"\x00")) > end:
            raise DatasetCorrupt(
                f"{path}: {block_label(info, global_block)}: non-zero bytes after the end-of-block byte at offset {end}"
            )
        if records_here == 0:
            empty_blocks.append(global_block)
        nlines += records_here
        advance(1)
    if nlines and empty_blocks:
        raise DatasetCorrupt(
            f"{path}: {block_label(info, empty_blocks[0])}: empty block inside a file with records (zeroed-out data?)"
        )
    if nlines != info.nlines:
        raise DatasetCorrupt(f"{path}: meta.bin says nlines={info.nlines}, the file holds {nlines} records")
    if nbytes != info.nbytes:
        raise DatasetCorrupt(f"{path}: meta.bin says nbytes={info.nbytes}, the records add up to {nbytes}")
    if hasher is not None and hasher.hexdigest() != digest:
        raise DatasetCorrupt(f"{path}: checksum mismatch: meta.bin says {checksum}, the file has {algorithm}:{hasher.hexdigest()}")
    recorded = info.extra_keys.get("serializer")
    if recorded in ("pickle", "json") and set(kinds) - {recorded}:
        raise DatasetCorrupt(f"{path}: meta.bin says serializer={recorded}, found {dict(kinds)}")
    return FileCheck(info.file_name, info.nblocks, nlines, nbytes, dict(kinds), hasher is not None)


def verify_dataset(path: str | os.PathLike, decode: bool = True, progress: bool = False) -> VerifyReport:
    """Check every file of the dataset at `path`, a local folder or a remote URL (see the
    module docstring).

    Returns a VerifyReport when all is well. Raises DatasetCorrupt listing every problem,
    one line per file; FileNotFoundError without meta.bin.
    """
    path = path.rstrip("/") if is_remote(path) else Path(path)
    infos = read_meta_of(path)
    checks: list[FileCheck] = []
    problems: list[str] = []
    with open_progress_bar(f"verify {path}", sum(info.nblocks for info in infos), progress) as advance:
        for info in infos:
            try:
                checks.append(verify_file(path, info, decode=decode, advance=advance))
            except DatasetCorrupt as error:
                problems.append(str(error))
    if problems:
        raise DatasetCorrupt("\n".join(problems))
    return VerifyReport(path, checks)
