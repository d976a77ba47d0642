"""One token shard: the converted records of one data file, as an Arrow IPC file.

A row per record that converted, in file order:

| column | type | what |
|---|---|---|
| `record` | int64 | index of the record in its data file (rejected records leave gaps) |
| `block`, `offset` | int32 | where the record is: block within its data file, byte offset in the block (`DistributedDataset.position()`) |
| `ids`, `id_subs`, `segments` | list<int32> | `convert_data_to_id`'s ids, id_subs, segments |
| `context` | list<int8> | 1 = given, 0 = predicted |
| `segment_rel` | list<int32> | flattened num_segments x num_segments buckets |
| `num_segments`, `length` | int32 | segments, and tokens (`len(ids)`) |
| `answer_dicts` | int32 | dicts under `<ans>`: a row with none converts the same whether answers are shuffled or not |
| `ext_ids`, `ext_tokens`, `ext_subs` | list<int32>, list<string>, list<int32> | the record's ext table and each entry's sub id in its family |
| `ext_positions`, `ext_at` | list<int32> | the token positions holding an ext token, and its ext id there |

The record's `ExtStates` (what `prev_ext_states` takes) is rebuilt by `ext_states(row)`; the
ext columns let a row continue another sample's ext states (`tokenization.token_rows`). The
shard's key (file and vocab fingerprints, conversion) is in the schema metadata under `bee.key`,
so a shard file describes itself. Written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tokenization.convert import ExtStates
from tokenization.convert import _family_token as family_of  # one rule for `<option_3>` -> `<option>`

KEY_METADATA = b"bee.key"
BATCH_ROWS = 1024  # records per Arrow record batch

# list<int> columns and the numpy dtype of their values
LIST_COLUMNS = {"ids": np.int32, "id_subs": np.int32, "segments": np.int32, "context": np.int8,
                "segment_rel": np.int32, "ext_ids": np.int32, "ext_subs": np.int32,
                "ext_positions": np.int32, "ext_at": np.int32}  # fmt: skip
INT_COLUMNS = {"record": pa.int64(), "block": pa.int32(), "offset": pa.int32(), "num_segments": pa.int32(),
               "length": pa.int32(), "answer_dicts": pa.int32()}  # fmt: skip
SCHEMA = pa.schema(
    [
        *(pa.field(name, INT_COLUMNS[name]) for name in ("record", "block", "offset")),
        *(pa.field(name, pa.list_(pa.from_numpy_dtype(LIST_COLUMNS[name])))
          for name in ("ids", "id_subs", "segments", "context", "segment_rel")),
        *(pa.field(name, INT_COLUMNS[name]) for name in ("num_segments", "length", "answer_dicts")),
        pa.field("ext_ids", pa.list_(pa.int32())),
        pa.field("ext_tokens", pa.list_(pa.string())),
        pa.field("ext_subs", pa.list_(pa.int32())),
        pa.field("ext_positions", pa.list_(pa.int32())),
        pa.field("ext_at", pa.list_(pa.int32())),
    ]
)


def _list_array(arrays: list[np.ndarray], dtype: type[np.integer]) -> pa.ListArray:
    # One flat values buffer plus offsets: far faster than converting row by row.
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate(arrays).astype(dtype, copy=False) if arrays else np.zeros(0, dtype=dtype)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


class ShardWriter:
    """Collects converted records and writes them as one shard file (see the module docstring).

    Use as a context manager; the file appears at `path` only when the block ends cleanly.
    """

    def __init__(self, path: str | os.PathLike, key: dict[str, Any]) -> None:
        self.path = Path(path)
        self._schema = SCHEMA.with_metadata({KEY_METADATA: json.dumps(key, sort_keys=True).encode()})
        self._rows: dict[str, list] = {}
        self._reset()
        self._tmp_name: str | None = None
        self._writer: pa.ipc.RecordBatchFileWriter | None = None

    def _reset(self) -> None:
        self._rows = {name: [] for name in SCHEMA.names}

    def __enter__(self) -> ShardWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; shards are read by other users' training jobs
        self._sink = os.fdopen(fd, "wb")
        self._writer = pa.ipc.new_file(self._sink, self._schema)
        return self

    def add(
        self, converted: tuple, *, record: int, block: int, offset: int,
        ext_positions: list[tuple[int, int]], answer_dicts: int,
    ) -> None:
        """Add one record: `convert_data_to_id`'s result, the record's index in the data file, its
        block within the file and offset in the block, the (position, ext id) of its ext tokens
        (`convert_data_to_id(..., ext_positions=[])`) and its number of dicts under `<ans>`."""
        ids, id_subs, context, segments, segment_rel, num_segments, ext_states = converted
        rows = self._rows
        rows["record"].append(record)
        rows["block"].append(block)
        rows["offset"].append(offset)
        rows["answer_dicts"].append(answer_dicts)
        rows["ids"].append(ids)
        rows["id_subs"].append(id_subs)
        rows["segments"].append(segments)
        rows["context"].append(context)
        rows["segment_rel"].append(segment_rel)
        rows["num_segments"].append(num_segments)
        rows["length"].append(len(ids))
        ext_table = ext_states["ext_table"]
        ext_ids = sorted(ext_table)
        subs = {idx: sub for members in ext_states["token_id_table"].values() for idx, sub in members.items()}
        rows["ext_ids"].append(np.array(ext_ids, dtype=np.int32))
        rows["ext_tokens"].append([ext_table[idx] for idx in ext_ids])
        rows["ext_subs"].append(np.array([subs[idx] for idx in ext_ids], dtype=np.int32))
        rows["ext_positions"].append(np.array([position for position, _ in ext_positions], dtype=np.int32))
        rows["ext_at"].append(np.array([idx for _, idx in ext_positions], dtype=np.int32))
        if len(rows["record"]) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        rows = self._rows
        if not rows["record"]:
            return
        columns = {name: pa.array(rows[name], type=kind) for name, kind in INT_COLUMNS.items()}
        columns["ext_tokens"] = pa.array(rows["ext_tokens"], type=pa.list_(pa.string()))
        for name, kind in LIST_COLUMNS.items():
            columns[name] = _list_array(rows[name], kind)
        assert self._writer is not None
        self._writer.write_batch(pa.record_batch([columns[name] for name in SCHEMA.names], schema=self._schema))
        self._reset()

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._writer is not None and self._tmp_name is not None
        try:
            if exc_type is None:
                self._flush()
                self._writer.close()
                self._sink.flush()
                os.fsync(self._sink.fileno())
                self._sink.close()
                os.replace(self._tmp_name, self.path)
        finally:
            if not self._sink.closed:
                self._sink.close()
            if os.path.exists(self._tmp_name):
                os.unlink(self._tmp_name)


def shard_key(path: str | os.PathLike) -> dict[str, Any]:
    """The key a shard file was written with (its schema metadata)."""
    metadata = pa.ipc.open_file(pa.memory_map(str(path))).schema.metadata or {}
    return json.loads(metadata.get(KEY_METADATA, b"{}"))


def read_shard(path: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """The whole shard (or only `columns`) as an Arrow table, memory-mapped."""
    # The table's buffers point into the map, which stays open as long as they live.
    table = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    return table.select(columns) if columns is not None else table


def iter_shard_rows(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Each row as a dict of numpy arrays (int columns) and lists, in file order."""
    table = read_shard(path)
    for batch in table.to_batches():
        columns = {name: batch.column(name) for name in SCHEMA.names}
        for i in range(batch.num_rows):
            row: dict[str, Any] = {}
            for name, column in columns.items():
                value = column[i]
                if name in LIST_COLUMNS:
                    row[name] = value.values.to_numpy(zero_copy_only=False)
                else:
                    row[name] = value.as_py()
            yield row


def ext_states(row: dict[str, Any]) -> ExtStates:
    """The `ExtStates` a row's conversion ended with (pass as `prev_ext_states` to continue)."""
    return ext_states_of(row["ext_ids"], row["ext_tokens"], row["ext_subs"])


def ext_states_of(ext_ids: Sequence[int], ext_tokens: Sequence[str], ext_subs: Sequence[int]) -> ExtStates:
    """The `ExtStates` of a conversion's ext tokens (ids, tokens and sub-ids, in parallel)."""
    ext_table = {int(idx): token for idx, token in zip(ext_ids, ext_tokens)}
    token_id_table: dict[str, dict[int, int]] = {}
    for idx, token, sub in zip(ext_ids, ext_tokens, ext_subs):
        token_id_table.setdefault(family_of(token), {})[int(idx)] = int(sub)
    return {"ext_table": ext_table, "token_id_table": token_id_table}
