"""Find a record of a binary dataset by its position, and its index in the dataset's record order.

The trainer's reader names a record by `(data file, block within the file, offset in the
block)` (`DistributedDataset.position`). The dataset's record order is the order it was
written in: meta.bin's files in turn, each file's blocks, each block's records. A corpus build
packs its Parquet shards in that order, so the index leads back to the shard row (and the
input line) a record came from (`corpus.pipeline.provenance`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpus.dataset.blockfile import check_file_size, iter_block_payloads, read_block
from corpus.dataset.meta import read_meta
from corpus.dataset.serializer import AutoSerializer


@dataclass(frozen=True)
class LocatedRecord:
    """The record at a position: its 0-based index in the dataset and its decoded value."""

    index: int
    value: Any


def locate_record(dataset_path: str | os.PathLike, file_name: str, block: int, offset: int) -> LocatedRecord:
    """The record at `offset` of block `block` (counted within `file_name`) and its index.

    Reads the blocks of that file up to `block` (record headers, one block at a time).
    Raises KeyError when the dataset has no such file, block or record start, DatasetCorrupt
    for a broken block.
    """
    path = Path(dataset_path)
    infos = read_meta(path)
    index = 0
    for info in infos:
        if info.file_name == file_name:
            break
        index += info.nlines
    else:
        raise KeyError(f"{path}: meta.bin lists no data file {file_name!r}")
    if not 0 <= block < info.block_end - info.block_begin:
        raise KeyError(f"{path / file_name}: no block {block} (the file has {info.block_end - info.block_begin})")
    data_file = path / file_name
    check_file_size(data_file, info)
    fd = os.open(data_file, os.O_RDONLY)
    try:
        for global_block in range(info.block_begin, info.block_begin + block + 1):
            contents = read_block(fd, data_file, info, global_block)
            for record_offset, payload in iter_block_payloads(contents, data_file, info, global_block):
                if global_block == info.block_begin + block and record_offset == offset:
                    return LocatedRecord(index, AutoSerializer().deserialize(payload))
                if global_block == info.block_begin + block and record_offset > offset:
                    break
                index += 1
    finally:
        os.close(fd)
    raise KeyError(f"{data_file}: no record starts at offset {offset} of block {block}")
