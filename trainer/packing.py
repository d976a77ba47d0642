"""Best-fit packing of instances into fixed-length rows, and the batch arrays the model trains on.

`BatchPacker` keeps open rows of `max_length` tokens. Each new instance goes to the open
row it fills best (the one with the least room left that still holds it), or opens a new
row. Once more than `batch_size` rows are open, the first `batch_size` become a batch.
The arrays, including the targets and the per-batch ext table, are the ones CPM-Bee's
`_MixedDatasetBatchPacker.pack_batch` builds (checked by
tests/benchmarks/compare_packing_reference.py and a golden fixture), except that
`task_names` is listed in order of first appearance where the reference used a set's order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, TypedDict

import numpy as np
from numpy.typing import NDArray

from trainer.incontext import Instance, build_instance

IGNORE_INDEX = -100  # target of positions that are not predicted


class PackedBatch(TypedDict):
    """One batch; B = rows, L = max_length, R = longest `segment_rel` of a row, E = ext tokens."""

    inputs: NDArray[np.int32]  # (B, L) token ids, 0 after `length`
    inputs_sub: NDArray[np.int32]  # (B, L) ext sub-ids
    length: NDArray[np.int32]  # (B,) used tokens of each row
    context: NDArray[np.bool_]  # (B, L) True = given, False = predicted
    sample_ids: NDArray[np.int32]  # (B, L) 0 = sample, i = i-th in-context sample
    num_segments: NDArray[np.int32]  # (B, L)
    segment_ids: NDArray[np.int32]  # (B, L)
    segment_rel_offset: NDArray[np.int32]  # (B, L) where the token's bucket matrix starts in segment_rel
    segment_rel: NDArray[np.int32]  # (B, R)
    spans: NDArray[np.int32]  # (B, L) index of the instance within its row
    target: NDArray[np.int32]  # (B, L) next-token targets, IGNORE_INDEX where nothing is predicted
    ext_ids: NDArray[np.int32]  # (E,) base id of each ext token of the batch (E >= 1)
    ext_sub: NDArray[np.int32]  # (E,) its sub-id; target ids vocab_size + k name ext token k
    task_ids: NDArray[np.int32]  # (B, L) index into task_names
    task_names: list[str]
    # per row, per instance: [first token, tokens, [[dataset, data file, block, offset] per sample]]
    origins: list[list[list[Any]]]


class BatchPacker:
    """Packs instances into rows of `max_length` tokens and hands out batches of `batch_size` rows.

    `shuffle_rng`, when given, shuffles the fields of answers as CPM-Bee does; without it
    the conversion is deterministic.
    """

    def __init__(
        self,
        batch_size: int,
        max_length: int,
        tokenizer: Any,
        max_depth: int = 16,
        *,
        shuffle_rng: np.random.Generator | None = None,
    ) -> None:
        if batch_size < 1 or max_length < 2:
            raise ValueError(f"batch_size must be >= 1 and max_length >= 2, got {batch_size} and {max_length}")
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_depth = max_depth
        self.tokenizer = tokenizer
        self.shuffle_rng = shuffle_rng
        self._rows: list[list[Instance]] = []
        self._row_lengths: list[int] = []

    def __len__(self) -> int:
        """Number of open rows."""
        return len(self._rows)

    def add(self, sample: Any, task_name: str, incontext: Iterable[Any] = (),
            origins: Sequence[tuple[str, str, int, int]] = ()) -> PackedBatch | None:
        """Convert a transformed sample (and the in-context samples that fit) and place it.

        `origins` names where the sample and its in-context samples were read (it may grow
        while `incontext` is consumed; the ones the instance holds are kept with it).
        Returns a batch when more than `batch_size` rows are open afterwards, else None.
        Raises `trainer.incontext.SampleRejected` when the sample is too long or not valid
        input; nothing is placed then, but the in-context iterable is left untouched.
        """
        instance = build_instance(
            self.tokenizer,
            sample,
            task_name,
            incontext,
            max_length=self.max_length,
            max_depth=self.max_depth,
            shuffle_rng=self.shuffle_rng,
        )
        if origins:
            instance = dataclasses.replace(instance, origins=tuple(origins[: instance.num_samples]))
        return self.add_instance(instance)

    def add_instance(self, instance: Instance) -> PackedBatch | None:
        """Place a built instance by best fit; returns a batch when more than `batch_size` rows are open."""
        n = len(instance)
        if n > self.max_length:
            raise ValueError(f"instance of {n} tokens does not fit max_length={self.max_length}")
        best, best_room = None, None
        for row, used in enumerate(self._row_lengths):
            room = self.max_length - used
            # strictly less: the first of equally good rows wins, as in the reference
            if n <= room and (best_room is None or room < best_room):
                best, best_room = row, room
        if best is None:
            self._rows.append([instance])
            self._row_lengths.append(n)
        else:
            self._rows[best].append(instance)
            self._row_lengths[best] += n
        if len(self._rows) > self.batch_size:
            return self.pack_batch()
        return None

    def pack_batch(self, force: bool = False) -> PackedBatch:
        """Close the first `batch_size` open rows into a batch (fewer with `force`).

        Raises RuntimeError when fewer than `batch_size` rows are open and `force` is False,
        or when no row is open at all.
        """
        if len(self._rows) < self.batch_size and not force:
            raise RuntimeError(f"only {len(self._rows)} rows open, a batch needs {self.batch_size}")
        if not self._rows:
            raise RuntimeError("no open rows to pack")
        rows = self._rows[: self.batch_size]
        self._rows = self._rows[self.batch_size :]
        self._row_lengths = self._row_lengths[self.batch_size :]
        return pack_rows(rows, self.max_length, self.tokenizer.vocab_size, self.tokenizer.bos_id, self.tokenizer.eos_id)

    def state_dict(self) -> dict[str, Any]:
        """The open rows, picklable; enough to resume packing exactly."""
        return {"rows": [[instance.to_state() for instance in row] for row in self._rows]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rows = [[Instance.from_state(item) for item in row] for row in state["rows"]]
        self._row_lengths = [sum(len(instance) for instance in row) for row in self._rows]


def pack_rows(rows: list[list[Instance]], max_length: int, vocab_size: int, bos_id: int, eos_id: int) -> PackedBatch:
    """The batch arrays of `rows` (each a list of instances whose lengths sum to <= max_length)."""
    batch_size = len(rows)
    shape = (batch_size, max_length)
    inputs = np.zeros(shape, dtype=np.int32)
    inputs_sub = np.zeros(shape, dtype=np.int32)
    context = np.zeros(shape, dtype=np.int8)
    sample_ids = np.zeros(shape, dtype=np.int32)
    segment_ids = np.zeros(shape, dtype=np.int32)
    num_segments = np.zeros(shape, dtype=np.int32)
    segment_rel_offset = np.zeros(shape, dtype=np.int32)
    spans = np.zeros(shape, dtype=np.int32)
    task_ids = np.zeros(shape, dtype=np.int32)
    length = np.zeros((batch_size,), dtype=np.int32)

    task_names: list[str] = []
    task_index: dict[str, int] = {}
    rels: list[NDArray[np.int32]] = []
    origins: list[list[list[Any]]] = []
    for r, row in enumerate(rows):
        origins.append([])
        begin = 0
        rel_parts: list[NDArray[np.int32]] = []
        rel_length = 0
        for span_id, instance in enumerate(row):
            end = begin + len(instance)
            inputs[r, begin:end] = instance.input_ids
            inputs_sub[r, begin:end] = instance.input_sub
            context[r, begin:end] = instance.context
            sample_ids[r, begin:end] = instance.sample_ids
            segment_ids[r, begin:end] = instance.segment_ids
            num_segments[r, begin:end] = instance.num_segments
            # each instance's offsets point into its own part of the row's segment_rel
            segment_rel_offset[r, begin:end] = instance.segment_rel_offset + rel_length
            spans[r, begin:end] = span_id
            if instance.task_name not in task_index:
                task_index[instance.task_name] = len(task_names)
                task_names.append(instance.task_name)
            task_ids[r, begin:end] = task_index[instance.task_name]
            rel_parts.append(instance.segment_rel)
            rel_length += int(instance.segment_rel.shape[0])
            origins[r].append([begin, len(instance), [list(origin) for origin in instance.origins]])
            begin = end
        length[r] = begin
        rels.append(np.concatenate(rel_parts) if rel_parts else np.zeros(0, dtype=np.int32))

    segment_rel = np.zeros((batch_size, max(rel.shape[0] for rel in rels)), dtype=np.int32)
    for r, rel in enumerate(rels):
        segment_rel[r, : rel.shape[0]] = rel

    target, ext_ids, ext_sub = build_targets(inputs, inputs_sub, context, length, vocab_size, bos_id, eos_id)
    return {
        "inputs": inputs,
        "inputs_sub": inputs_sub,
        "length": length,
        "context": context > 0,
        "sample_ids": sample_ids,
        "num_segments": num_segments,
        "segment_ids": segment_ids,
        "segment_rel_offset": segment_rel_offset,
        "segment_rel": segment_rel,
        "spans": spans,
        "target": target,
        "ext_ids": ext_ids,
        "ext_sub": ext_sub,
        "task_ids": task_ids,
        "task_names": task_names,
        "origins": origins,
    }


def build_targets(
    inputs: NDArray[np.int32],
    inputs_sub: NDArray[np.int32],
    context: NDArray[np.int8],
    length: NDArray[np.int32],
    vocab_size: int,
    bos_id: int,
    eos_id: int,
) -> tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.int32]]:
    """Next-token targets and the batch's ext table, by CPM-Bee's rules.

    - Every distinct (id, sub) with sub > 0 gets an ext slot, numbered in order of first
      appearance (rows in order, tokens in order); as a target it is `vocab_size + slot`.
    - A predicted position t (context 0) with t >= 1 targets token t + 1 of its row, or EOS
      when token t + 1 begins a new segment (BOS): an answer ends with EOS.
    - The last used position of a row targets EOS when it is predicted.
    - An empty ext table holds one placeholder entry (id 0, sub 1) so that it is never empty.

    Returns (target (B, L), ext_ids (E,), ext_sub (E,)).
    """
    batch_size, max_length = inputs.shape
    used = np.arange(max_length)[None, :] < length[:, None]  # (B, L)

    is_ext = used & (inputs_sub > 0)
    keys = (inputs[is_ext].astype(np.int64) << 32) | inputs_sub[is_ext].astype(np.int64)
    unique_keys, first_seen, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first_seen, kind="stable")  # slots in order of first appearance
    slot_of_unique = np.empty(order.shape[0], dtype=np.int64)
    slot_of_unique[order] = np.arange(order.shape[0])
    token_targets = inputs.astype(np.int64)
    token_targets[is_ext] = vocab_size + slot_of_unique[inverse.reshape(-1)]
    ext_ids = (unique_keys[order] >> 32).astype(np.int32)
    ext_sub = (unique_keys[order] & 0xFFFFFFFF).astype(np.int32)
    if ext_ids.shape[0] == 0:
        ext_ids = np.array([0], dtype=np.int32)
        ext_sub = np.array([1], dtype=np.int32)

    target = np.full((batch_size, max_length), IGNORE_INDEX, dtype=np.int32)
    # position t predicts token t + 1; the reference starts at t = 1 (its loop's `j > 1`)
    next_used = used[:, 1:]
    predicts = next_used & (context[:, :-1] == 0)
    predicts[:, 0] = False
    next_target = np.where(inputs[:, 1:] == bos_id, eos_id, token_targets[:, 1:])
    target[:, :-1][predicts] = next_target[predicts]
    rows = np.nonzero(length > 0)[0]
    last = length[rows] - 1
    ends_predicted = context[rows, last] == 0
    target[rows[ends_predicted], last[ends_predicted]] = eos_id
    return target, ext_ids, ext_sub
