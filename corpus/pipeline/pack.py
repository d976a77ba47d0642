"""Stage 8b, pack: stream the Parquet shards, in input order, into CPM-Bee's blocked binary
dataset (`corpus.dataset.build_dataset`), marked as escaped. Runs in the driver after the
Beam job; it holds one shard's batch at a time, never the corpus.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from corpus.dataset import build_dataset
from corpus.dataset.writer import check_file_name
from corpus.pipeline.parquet_shards import ARROW_DIR, RECORDS_SUFFIX, join, list_shards, read_records
from schemas import Record
from schemas.build_config import WriteConfig

DATASET_DIR = "data"


@dataclass(frozen=True)
class PackResult:
    path: Path
    nlines: int
    nbytes: int


def data_file_name(dataset_name: str) -> str:
    """The data file's name: the dataset name when it is a plain file name, else `data`."""
    try:
        check_file_name(dataset_name)
        return dataset_name
    except ValueError:
        return "data"


def pack_dataset(staging: str, dataset_name: str, config: WriteConfig, extra_meta: dict,
                 on_record: Callable[[Record], None] = lambda record: None,
                 dataset_dir: Path | None = None) -> PackResult:
    """Write `<staging>/data/` from `<staging>/arrow/*.parquet`, calling `on_record` with each
    record packed; returns the dataset's path and counts. The binary writer needs local files:
    for a remote staging folder pass a local `dataset_dir` (and upload it afterwards)."""
    path = dataset_dir if dataset_dir is not None else Path(staging) / DATASET_DIR
    builder = build_dataset(path, data_file_name(dataset_name), block_size=config.block_size,
                            serializer=config.serializer, extra_meta={"escaped": True, **extra_meta})  # build passes the config's state
    with builder as writer:
        for _, url in list_shards(join(staging, ARROW_DIR), RECORDS_SUFFIX):
            for record in read_records(url):
                writer.write(record.payload)
                on_record(record)
    return PackResult(path, writer.nlines, writer.nbytes)


def content_fingerprint(dataset_path: Path) -> str:
    """sha256 over the dataset's files (meta.bin and data files, by name)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in dataset_path.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()
