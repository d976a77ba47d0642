"""Token shards read back by record position: how the trainer skips tokenizing online.

    rows = DatasetTokenRows.open(dataset, shards_dir, vocab_fingerprint, max_depth, escaped)
    record = reader.read()
    row = rows.row(*reader.position())            # TokenRow, or None: convert `record` online
    ids, id_subs, ... = row.converted(prev_ext_states, tokenizer.vocab_size)

`TokenRow.converted` returns what `convert_data_to_id(tokenizer, sample, prev_ext_states,
shuffle_answer=False)` returns for the row's record. Without `prev_ext_states` that is the
stored row. With them (an in-context sample after others) the row's ext tokens are renumbered
as the tokenizer would have numbered them: a token already in the table keeps its ext id, a
new one gets the next id, and each family's sub ids follow first appearance. Rows with dicts
under `<ans>` (`answer_dicts > 0`) convert differently when answers are shuffled: callers that
shuffle convert those records online.

Only shards that are fresh (same data file, vocabulary and conversion) are used, and a data
file whose meta.bin line changes while training loses its shard; `row` then gives None.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from corpus.dataset.meta import read_meta
from schemas import FileInfo
from tokenization.convert import ExtStates
from tokenization.shard_format import LIST_COLUMNS, ext_states_of, family_of, read_shard
from tokenization.token_shards import DEFAULT_MAX_DEPTH, data_file_fingerprint, fresh_shards

log = logging.getLogger(__name__)

Converted = tuple[
    NDArray[np.int32], NDArray[np.int32], NDArray[np.int8], NDArray[np.int32], NDArray[np.int32], int, ExtStates
]


@dataclass(frozen=True)
class TokenRow:
    """One record's row of a token shard (columns in `tokenization.shard_format`)."""

    ids: NDArray[np.int32]
    id_subs: NDArray[np.int32]
    context: NDArray[np.int8]
    segments: NDArray[np.int32]
    segment_rel: NDArray[np.int32]
    num_segments: int
    answer_dicts: int
    ext_ids: NDArray[np.int32]
    ext_tokens: list[str]
    ext_subs: NDArray[np.int32]
    ext_positions: NDArray[np.int32]
    ext_at: NDArray[np.int32]

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def ext_states(self) -> ExtStates:
        """The ext states of the record converted alone."""
        return ext_states_of(self.ext_ids.tolist(), self.ext_tokens, self.ext_subs.tolist())

    def converted(self, prev_ext_states: ExtStates | None, vocab_size: int) -> Converted:
        """`convert_data_to_id(tokenizer, sample, prev_ext_states, shuffle_answer=False)` of the record.

        `vocab_size` is the tokenizer's (new ext ids count up from it). `prev_ext_states` is not modified.
        """
        arrays = (self.ids, self.id_subs, self.context, self.segments, self.segment_rel, self.num_segments)
        if prev_ext_states is None:
            return (*arrays, self.ext_states())
        # The tokenizer's numbering (`CPMBeeTokenizer._assign_ext_ids`) and convert_data_to_id's
        # sub ids, replayed over the row's ext tokens in order of first appearance.
        ext_table = dict(prev_ext_states["ext_table"])
        ext_rev = {token: idx for idx, token in prev_ext_states["ext_table"].items()}
        token_id_table = {family: dict(members) for family, members in prev_ext_states["token_id_table"].items()}
        new_sub: dict[int, int] = {}
        for row_idx, token in zip(self.ext_ids.tolist(), self.ext_tokens):
            idx = ext_rev.get(token)
            if idx is None:
                idx = len(ext_rev) + vocab_size
                ext_rev[token] = idx
                ext_table[idx] = token
            members = token_id_table.setdefault(family_of(token), {})
            new_sub[row_idx] = members.setdefault(idx, len(members))
        id_subs = self.id_subs
        if self.ext_positions.shape[0]:
            id_subs = id_subs.copy()
            id_subs[self.ext_positions] = [new_sub[idx] for idx in self.ext_at.tolist()]
        return (*arrays[:1], id_subs, *arrays[2:], {"ext_table": ext_table, "token_id_table": token_id_table})


class ShardRows:
    """The rows of one shard file, by (block within the data file, offset in the block).

    The file is memory-mapped; only the `block` and `offset` columns are read up front.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        table = read_shard(self.path)
        self._batches = table.to_batches()
        sizes = [batch.num_rows for batch in self._batches]
        self._batch_starts = np.cumsum([0, *sizes])
        blocks = table.column("block").to_numpy().astype(np.int64)
        offsets = table.column("offset").to_numpy().astype(np.int64)
        self._keys = (blocks << 32) | offsets  # rows are in file order: sorted
        if self._keys.shape[0] > 1 and not np.all(self._keys[1:] > self._keys[:-1]):
            raise ValueError(f"{self.path}: rows are not in file order; rebuild the shard (bee tokenize)")
        self._columns: dict[int, dict[str, tuple[np.ndarray, np.ndarray] | pa.Array]] = {}

    def __len__(self) -> int:
        return int(self._keys.shape[0])

    def _batch_columns(self, batch_index: int) -> dict[str, tuple[np.ndarray, np.ndarray] | pa.Array]:
        columns = self._columns.get(batch_index)
        if columns is None:
            batch = self._batches[batch_index]
            columns = {}
            for name in LIST_COLUMNS:
                array = batch.column(name)
                columns[name] = (array.offsets.to_numpy(), array.values.to_numpy())  # views into the map
            columns["num_segments"] = batch.column("num_segments").to_numpy()
            columns["answer_dicts"] = batch.column("answer_dicts").to_numpy()
            columns["ext_tokens"] = batch.column("ext_tokens")
            self._columns[batch_index] = columns
        return columns

    def row(self, block: int, offset: int) -> TokenRow | None:
        """The row of the record at `offset` in `block` of the data file; None when the record was rejected."""
        key = (block << 32) | offset
        index = int(np.searchsorted(self._keys, key))
        if index == self._keys.shape[0] or self._keys[index] != key:
            return None
        batch_index = int(np.searchsorted(self._batch_starts, index, side="right")) - 1
        i = index - int(self._batch_starts[batch_index])
        columns = self._batch_columns(batch_index)
        lists = {}
        for name in LIST_COLUMNS:
            starts, values = columns[name]
            lists[name] = values[starts[i] : starts[i + 1]]
        ext_tokens = columns["ext_tokens"][i].as_py() if lists["ext_ids"].shape[0] else []
        return TokenRow(
            num_segments=int(columns["num_segments"][i]),
            answer_dicts=int(columns["answer_dicts"][i]),
            ext_tokens=ext_tokens,
            **lists,
        )


class DatasetTokenRows:
    """The fresh token shards of one dataset, looked up by record position (see the module docstring)."""

    def __init__(self, dataset: Path, shards: dict[str, Path], fingerprints: dict[str, str]) -> None:
        self.dataset = dataset
        self.shards = shards  # data file name -> shard file
        self._fingerprints = fingerprints  # data file name -> the fingerprint its shard was made for
        self._open: dict[str, ShardRows] = {}
        self._checked: dict[str, FileInfo] = {}  # the meta.bin line each file's shard was last checked against

    @classmethod
    def open(
        cls,
        dataset: str | os.PathLike,
        vocab_fingerprint: str,
        *,
        escaped: bool,
        shards_dir: str | os.PathLike | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> DatasetTokenRows | None:
        """The dataset's shards that are fresh for this vocabulary and `max_depth` and were made
        with the `escaped` rule the trainer applies; None when there are none.

        Raises DatasetCorrupt, SchemaError for a broken shards.json.
        """
        dataset = Path(dataset)
        shards = fresh_shards(dataset, vocab_fingerprint, shards_dir, max_depth)
        infos = {info.file_name: info for info in read_meta(dataset)}
        usable = {name: path for name, path in shards.items() if (infos[name].extra_keys.get("escaped") is True) == escaped}
        if len(usable) < len(shards):
            log.warning("%s: %d token shards were made with another escaping rule than the manifest's; "
                        "their records are tokenized online", dataset, len(shards) - len(usable))
        if not usable:
            return None
        fingerprints = {name: data_file_fingerprint(dataset, infos[name]) for name in usable}
        return cls(dataset, usable, fingerprints)

    def row(self, info: FileInfo, block: int, offset: int) -> TokenRow | None:
        """The row of a record (`DistributedDataset.position()`); None when its file has no fresh
        shard or the record was rejected by the tokenizer."""
        name = info.file_name
        if self._checked.get(name) is not info:
            if name not in self.shards:
                return None
            if data_file_fingerprint(self.dataset, info) != self._fingerprints[name]:
                log.warning("%s: %s changed since its token shard was made; tokenizing it online", self.dataset, name)
                del self.shards[name]
                self._open.pop(name, None)
                self._checked.pop(name, None)
                return None
            self._checked[name] = info
        rows = self._open.get(name)
        if rows is None:
            rows = self._open[name] = ShardRows(self.shards[name])
        return rows.row(block, offset)
