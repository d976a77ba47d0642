"""Parquet shards of records and rejects, one per input file, read and written through
`apache_beam.io.filesystems` (local disk, GCS, S3, HDFS alike) and replaced atomically.

A shard's name is its input file's `source_path`, quoted into one file name, so shard names
are fixed by the inputs (never by worker count) and sort back to input order when unquoted.
"""

from __future__ import annotations

import io
import json
import urllib.parse
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from schemas import Record, Reject
from schemas.record import (
    RECORD_ARROW_SCHEMA,
    REJECT_ARROW_SCHEMA,
    record_from_row,
    record_to_row,
    reject_from_row,
    reject_to_row,
)

ARROW_DIR = "arrow"  # a build's record shards: <output>/arrow/<shard name>.parquet
REJECTS_DIR = "rejects"  # and its reject shards: <output>/rejects/<shard name>.rejects.parquet
RECORDS_SUFFIX = ".parquet"
REJECTS_SUFFIX = ".rejects.parquet"
MARKER_SUFFIX = ".done.json"
# Version of the shards' layout (schemas.record's RECORD/REJECT_ARROW_SCHEMA), written into each
# published shard's key-value metadata as `bee.schema_version`: raise it when a field changes.
ARROW_SCHEMA_VERSION = 2  # 2: language, language_score, pii (issue 17)


def shard_name(source_path: str) -> str:
    """One file name for an input file's shards: `txt/a.txt` -> `txt%2Fa.txt`."""
    return urllib.parse.quote(source_path, safe="")


def source_of(shard_file: str, suffix: str) -> str:
    """Inverse of `shard_name` for a shard file name ending in `suffix`."""
    name = shard_file.rsplit("/", 1)[-1]
    return urllib.parse.unquote(name[: -len(suffix)])


def join(*parts: str) -> str:
    return FileSystems.join(*parts)


def write_bytes_atomic(url: str, data: bytes) -> None:
    """Write under a temporary name, then rename over `url`: readers never see half a file."""
    tmp = url + ".tmp"
    with FileSystems.create(tmp) as out:
        out.write(data)
    if FileSystems.exists(url):
        FileSystems.delete([url])
    FileSystems.rename([tmp], [url])


def read_bytes(url: str) -> bytes:
    with FileSystems.open(url) as stream:
        return stream.read()


def shard_metadata(dataset: str, build_config_hash: str) -> dict[str, str]:
    """Key-value metadata of a published shard, so a reader of `arrow/` alone (pyarrow, polars,
    duckdb) can tell which dataset and build it holds and which layout version it is."""
    return {"bee.dataset": dataset, "bee.build_config_hash": build_config_hash,
            "bee.schema_version": str(ARROW_SCHEMA_VERSION)}


def _table_bytes(table: pa.Table, metadata: dict[str, str] | None = None) -> bytes:
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def write_records(url: str, records: list[Record], metadata: dict[str, str] | None = None) -> None:
    """Records, sorted by input position, as one Parquet file of `RECORD_ARROW_SCHEMA`
    (with `metadata`, e.g. `shard_metadata`, as the file's key-value metadata)."""
    rows = [record_to_row(r) for r in sorted(records, key=lambda r: r.position)]
    write_bytes_atomic(url, _table_bytes(pa.Table.from_pylist(rows, schema=RECORD_ARROW_SCHEMA), metadata))


def write_rejects(url: str, rejects: list[Reject], metadata: dict[str, str] | None = None) -> None:
    """Rejects, sorted by input position then stage, as one Parquet file of `REJECT_ARROW_SCHEMA`."""
    rows = [reject_to_row(r) for r in sorted(rejects, key=lambda r: (r.position, r.stage, r.reason))]
    write_bytes_atomic(url, _table_bytes(pa.Table.from_pylist(rows, schema=REJECT_ARROW_SCHEMA), metadata))


def _rows(url: str, batch_rows: int = 4096) -> Iterator[dict]:
    with FileSystems.open(url) as stream:
        parquet = pq.ParquetFile(io.BytesIO(stream.read()))
        for batch in parquet.iter_batches(batch_size=batch_rows):
            yield from batch.to_pylist()


def read_records(url: str) -> Iterator[Record]:
    for row in _rows(url):
        yield record_from_row(row)


def read_rejects(url: str) -> Iterator[Reject]:
    for row in _rows(url):
        yield reject_from_row(row)


def write_marker(url: str, content: dict) -> None:
    write_bytes_atomic(url, (json.dumps(content, sort_keys=True) + "\n").encode())


def read_marker(url: str) -> dict | None:
    """The marker's content, or None when it is missing or unreadable (then the work is redone)."""
    try:
        return json.loads(read_bytes(url))
    except (IOError, OSError, ValueError):
        return None


def list_shards(folder: str, suffix: str) -> list[tuple[str, str]]:
    """`(source_path, url)` of every shard in `folder` ending in `suffix`, in input order."""
    matches = FileSystems.match([join(folder, "*" + suffix)])[0].metadata_list
    found = []
    for meta in matches:
        if suffix == RECORDS_SUFFIX and meta.path.endswith(REJECTS_SUFFIX):
            continue
        found.append((source_of(meta.path, suffix), meta.path))
    return sorted(found)
