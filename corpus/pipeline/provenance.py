"""From a record of a built dataset back to the input line it came from.

A corpus build packs `<output>/arrow/*.parquet` in shard order into `<output>/data/` (pack.py),
so the record with index k of the dataset is row k of the shards taken in turn, and that row
keeps `source_path`, `source_line` and `piece`. The row's payload is compared with the
record, so a dataset changed after its build (shuffled, merged, compacted) is never given a
wrong source: the answer is then "unknown" with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from corpus.pipeline.output_folder import BUILD_STAMP
from corpus.pipeline.pack import DATASET_DIR
from corpus.pipeline.parquet_shards import ARROW_DIR, RECORDS_SUFFIX, list_shards
from schemas.record import record_from_row


@dataclass(frozen=True)
class RecordSource:
    """Where a record came from: `source_path:source_line` (piece of a split document), or why unknown."""

    source_path: str | None = None
    source_line: int | None = None
    piece: int | None = None
    why_unknown: str | None = None

    def __str__(self) -> str:
        if self.why_unknown:
            return f"unknown ({self.why_unknown})"
        piece = f" piece {self.piece}" if self.piece else ""
        return f"{self.source_path}:{self.source_line}{piece}"


def record_source(dataset_path: str | os.PathLike, index: int, value: Any) -> RecordSource:
    """The input line of record `index` of the dataset at `dataset_path` whose decoded value is `value`."""
    dataset = Path(dataset_path)
    output = dataset.parent
    if dataset.name != DATASET_DIR or not (output / BUILD_STAMP).exists():
        return RecordSource(why_unknown=f"{dataset} is not the data folder of a corpus build")
    remaining = index
    for _, url in list_shards(str(output / ARROW_DIR), RECORDS_SUFFIX):
        shard = pq.ParquetFile(url)
        rows = shard.metadata.num_rows
        if remaining >= rows:
            remaining -= rows
            continue
        row = _row(shard, remaining)
        record = record_from_row(row)
        if record.payload != value:
            return RecordSource(why_unknown=f"the dataset changed after its build (record {index} is not row "
                                            f"{remaining} of {url})")
        return RecordSource(record.source_path, record.source_line, record.piece)
    return RecordSource(why_unknown=f"the build's shards hold fewer than {index + 1} records")


def _row(shard: pq.ParquetFile, index: int) -> dict[str, Any]:
    for group in range(shard.metadata.num_row_groups):
        rows = shard.metadata.row_group(group).num_rows
        if index < rows:
            return shard.read_row_group(group).slice(index, 1).to_pylist()[0]
        index -= rows
    raise IndexError(index)
