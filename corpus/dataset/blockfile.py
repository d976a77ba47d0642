"""Blocks and records of one data file: framing, whole-block reads, and parsing with checks.

A data file is a run of `block_size`-byte blocks. A record is 0x1F, a 4-byte little-endian
payload length, the payload; it never crosses a block and always leaves at least one byte of
its block free, so a reader that meets 0x00 where a record would start has reached the end
of the block. Everything that breaks these rules is reported as `DatasetCorrupt` naming the
file, the block and the offset, never decoded into garbage records.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

from schemas import FileInfo

from corpus.dataset.meta import DatasetCorrupt, open_regular_fd

RECORD_MAGIC = 0x1F
END_OF_BLOCK = 0x00
HEADER_SIZE = 5  # magic + uint32 length
# a record needs its header and payload plus the byte after it (the end-of-block 0x00 or
# the next magic) inside the block: `offset + 2 + 4 + len(payload) <= block_size`.
RECORD_OVERHEAD = HEADER_SIZE + 1

RECORD_LENGTH = struct.Struct("<I")  # the uint32 after the magic byte


def max_payload_size(block_size: int) -> int:
    """The largest payload a block of `block_size` bytes can hold."""
    return block_size - RECORD_OVERHEAD


def block_label(info: FileInfo, global_block: int) -> str:
    """`block 12 (block 2 of the file)`: how errors name a block, after the file's path."""
    return f"block {global_block} (block {global_block - info.block_begin} of the file)"


def check_file_size(path: Path, info: FileInfo) -> None:
    """The data file must hold every block meta.bin gives it.

    Raises FileNotFoundError when it is missing, DatasetCorrupt when it is shorter.
    """
    size = os.stat(path).st_size
    expected = info.nblocks * info.block_size
    if size < expected:
        first_missing = info.block_begin + size // info.block_size
        raise DatasetCorrupt(
            f"{path}: truncated: meta.bin gives it {info.nblocks} blocks of {info.block_size} bytes "
            f"({expected} bytes), the file has {size} bytes; {block_label(info, first_missing)} is incomplete"
        )


def read_block(fd: int, path: Path, info: FileInfo, global_block: int) -> bytes:
    """One whole block, in one `pread`. Raises DatasetCorrupt when the file ends inside it."""
    offset = (global_block - info.block_begin) * info.block_size
    data = os.pread(fd, info.block_size, offset)
    if len(data) != info.block_size:
        raise DatasetCorrupt(
            f"{path}: {block_label(info, global_block)}: truncated: the file ends {len(data)} bytes "
            f"into the block (block size {info.block_size}); meta.bin points past the end of the file"
        )
    return data


def bad_record(path: Path | str, info: FileInfo, global_block: int, offset: int, block: bytes) -> DatasetCorrupt:
    """The error for a record start at `offset` that is neither a valid record nor end-of-block."""
    where = f"{path}: {block_label(info, global_block)}"
    magic = block[offset]
    if magic != RECORD_MAGIC:
        return DatasetCorrupt(f"{where}: bad magic 0x{magic:02x} at offset {offset} (expected 0x1f or 0x00)")
    if offset + HEADER_SIZE > len(block):
        return DatasetCorrupt(f"{where}: record header at offset {offset} runs past the end of the block")
    (length,) = RECORD_LENGTH.unpack_from(block, offset + 1)
    return DatasetCorrupt(
        f"{where}: record at offset {offset} claims {length} payload bytes, "
        f"which run past the end of the block ({len(block)} bytes)"
    )


def next_record(block: bytes, offset: int) -> tuple[int, int] | None:
    """(payload start, payload end) of the record at `offset`, None at end of block.

    Raises ValueError when the bytes there are not a record that fits the block; callers
    turn it into DatasetCorrupt with `bad_record`.
    """
    magic = block[offset]
    if magic == END_OF_BLOCK:
        return None
    if magic != RECORD_MAGIC or offset + HEADER_SIZE >= len(block):
        raise ValueError
    (length,) = RECORD_LENGTH.unpack_from(block, offset + 1)
    end = offset + HEADER_SIZE + length
    if end >= len(block):
        raise ValueError
    return offset + HEADER_SIZE, end


def iter_block_payloads(
    block: bytes, path: Path | str, info: FileInfo, global_block: int, offset: int = 0
) -> Iterator[tuple[int, bytes]]:
    """(offset of the record, payload) for each record of a block from `offset` on.

    Raises DatasetCorrupt on a bad record.
    """
    while True:
        try:
            span = next_record(block, offset)
        except ValueError:
            raise bad_record(path, info, global_block, offset, block) from None
        if span is None:
            return
        begin, end = span
        yield offset, block[begin:end]
        offset = end


def iter_file_records(dataset_path: str | os.PathLike, info: FileInfo) -> Iterator[tuple[int, int, bytes]]:
    """(global block, offset in the block, payload) for every record of one data file, in file order.

    Raises FileNotFoundError for a missing file, DatasetCorrupt for a short or broken one.
    """
    path = Path(dataset_path) / info.file_name
    fd = open_regular_fd(path)
    check_file_size(path, info)
    try:
        for global_block in range(info.block_begin, info.block_end):
            block = read_block(fd, path, info, global_block)
            for offset, payload in iter_block_payloads(block, path, info, global_block):
                yield global_block, offset, payload
    finally:
        os.close(fd)


def iter_file_payloads(dataset_path: str | os.PathLike, info: FileInfo) -> Iterator[tuple[int, bytes]]:
    """(global block, payload) for every record of one data file, in file order (see `iter_file_records`)."""
    for global_block, _, payload in iter_file_records(dataset_path, info):
        yield global_block, payload
