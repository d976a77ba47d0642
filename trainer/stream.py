"""The synchronous data path: manifest mixture -> transforms -> in-context samples -> packed batches.

`BatchStream` is what the background loader (`trainer.data.MixtureLoader`) runs; it can be
used directly in a debugger. Per instance it draws, from one seeded generator and in this
order: the dataset, the number of in-context samples (by `incontext_weight`), the
transform's randomness, then reads the sample and, lazily, its in-context samples from the
same dataset (the reference's `build_instance`). Samples that cannot be used are counted
by dataset and reason and skipped, never silently lost.

A record of a dataset without a transform whose token shard is fresh comes as its shard row
(`tokenization.TokenRow`) instead of being tokenized here; the batches are the same either way
(rows with fields under `<ans>` to shuffle are converted online while answers are shuffled).
"""

from __future__ import annotations

import logging
import os
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainer.incontext import SampleRejected
from trainer.mixture import Mixture, Source, WeightBy
from trainer.packing import BatchPacker, PackedBatch
from trainer.transforms import TransformFn

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass(frozen=True)
class StreamConfig:
    """What a `BatchStream` (and the `trainer.data.MixtureLoader` running one) makes batches from.
    A run config's `data` section gives most of it (`MixtureLoader.from_config`)."""

    manifest_path: str | os.PathLike  # the mixture manifest (datasets.json)
    batch_size: int  # rows per batch
    max_length: int  # tokens per row
    rank: int = 0  # this rank, of `world_size`: it reads blocks b with b % world_size == rank
    world_size: int = 1
    seed: int = 0  # with the rank, seeds the stream's one generator
    max_depth: int = 16  # segment-tree depth buckets
    weight_by: WeightBy = "lines"  # sample datasets by weight x nlines (CPM-Bee) or x ntokens
    shuffle_answers: bool = True  # shuffle the fields under <ans> (CPM-Bee does)
    token_shards: bool = True  # read fresh token shards instead of tokenizing online
    max_rejects_in_a_row: int = 1000  # unusable samples in a row from one dataset before it is an error


class BatchStream:
    """Endless packed batches from a mixture manifest, for `config.rank` of `config.world_size`.

    Takes a `StreamConfig` and a tokenizer (`tokenization.CPMBeeTokenizer`). The same config
    and state give the same batches. `state_dict()` after a batch resumes exactly at the next
    one (readers, generator and the packer's open rows).
    """

    def __init__(self, config: StreamConfig, tokenizer: Any) -> None:
        self.config = config
        self.mixture = Mixture(
            config.manifest_path, config.rank, config.world_size, config.seed, config.weight_by,
            max_depth=config.max_depth, vocab_fingerprint=tokenizer.vocab_fingerprint if config.token_shards else None,
        )  # fmt: skip
        # one generator per rank: ranks draw different mixtures, reruns draw the same
        self.rng = np.random.default_rng(np.random.SeedSequence([config.seed, config.rank]))
        self.packer = BatchPacker(
            config.batch_size, config.max_length, tokenizer, config.max_depth,
            shuffle_rng=self.rng if config.shuffle_answers else None,
        )  # fmt: skip
        self.max_rejects_in_a_row = config.max_rejects_in_a_row
        self.batches = 0
        self.rejects: Counter[str] = Counter()  # "task.dataset:reason" -> samples skipped
        self.recent_rejects: deque[str] = deque(maxlen=20)  # messages, for inspection
        self.samples_read: Counter[str] = Counter()  # "shards" (token shard rows) / "online" (tokenized here) -> samples

    def __iter__(self) -> Iterator[PackedBatch]:
        return self

    def __next__(self) -> PackedBatch:
        while True:
            self.mixture.refresh()
            batch = self._add_instance(self.mixture.choose(self.rng))
            if batch is not None:
                self.batches += 1
                return batch

    def _add_instance(self, source: Source) -> PackedBatch | None:
        num_incontext = int(self.rng.choice(source.incontext_p.shape[0], p=source.incontext_p))
        transform = source.transform.for_instance(self.rng, num_incontext)
        for _ in range(self.max_rejects_in_a_row):
            sample = self._read(source, transform, "transform_error")
            if sample is None:
                continue
            origins = [self._origin(source)]
            incontext = self._incontext_samples(source, transform, num_incontext, origins)
            try:
                return self.packer.add(sample, source.entry.task_name, incontext, origins)
            except SampleRejected as rejected:
                self._reject(source, rejected.reason, str(rejected))
        raise RuntimeError(
            f"dataset {source.identity}: {self.max_rejects_in_a_row} samples in a row could not be used "
            f"(max_length={self.packer.max_length}); last: {list(self.recent_rejects)[-3:]}"
        )

    def _incontext_samples(self, source: Source, transform: TransformFn, count: int,
                           origins: list[tuple[str, str, int, int]]) -> Iterator[Any]:
        for _ in range(count):
            sample = self._read(source, transform, "incontext_transform_error")
            if sample is not None:
                origins.append(self._origin(source))
                yield sample

    @staticmethod
    def _origin(source: Source) -> tuple[str, str, int, int]:
        """Where the record just read lies: (dataset identity, data file, block, offset), for tracing."""
        info, block, offset = source.reader.position()
        return source.identity, info.file_name, block, offset

    def _read(self, source: Source, transform: TransformFn, reason: str) -> Any | None:
        """The next sample of `source`: its token shard row when there is one to use, else the
        transformed record (None when the transform failed: counted as a reject)."""
        record = source.reader.read()
        if source.token_rows is not None:
            row = source.token_rows.row(*source.reader.position())
            if row is not None and (row.answer_dicts == 0 or self.packer.shuffle_rng is None):
                self.samples_read["shards"] += 1
                return row
        self.samples_read["online"] += 1
        try:
            return transform(record)
        except Exception as error:  # transform scripts are user code: count any failure as a reject
            self._reject(source, reason, f"{type(error).__name__}: {error}")
            return None

    def _reject(self, source: Source, reason: str, message: str) -> None:
        key = f"{source.identity}:{reason}"
        if key not in self.rejects:
            log.warning("dataset %s: skipping samples (%s), first: %s", source.identity, reason, message)
        self.rejects[key] += 1
        self.recent_rejects.append(f"{key}: {message}")

    # -------------------------------------------------------------- checkpoint state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue with the very next batch; picklable."""
        return {
            "version": STATE_VERSION,
            "rank": self.mixture.rank,
            "world_size": self.mixture.world_size,
            "batches": self.batches,
            "rng": self.rng.bit_generator.state,
            "readers": self.mixture.state_dict(),
            "packer": self.packer.state_dict(),
            "rejects": dict(self.rejects),
            "samples_read": dict(self.samples_read),
        }

    def load_state_dict(self, state: dict[str, Any]) -> list[str]:
        """Continue from `state_dict()`'s state. Returns datasets that had no saved position.

        Raises ValueError when the state is of another version, rank or world size (each
        rank resumes from its own state; reader positions are per rank).
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"data state version {state.get('version')!r}, expected {STATE_VERSION}")
        where = (state["rank"], state["world_size"])
        if where != (self.mixture.rank, self.mixture.world_size):
            raise ValueError(
                f"data state is for rank {where[0]} of {where[1]}, this is rank "
                f"{self.mixture.rank} of {self.mixture.world_size}"
            )
        self.rng.bit_generator.state = state["rng"]
        self.packer.load_state_dict(state["packer"])
        self.batches = state["batches"]
        self.rejects = Counter(state["rejects"])
        self.samples_read = Counter(state.get("samples_read", {}))  # states saved before token shards were read lack it
        missing = self.mixture.load_state_dict(state["readers"])
        if missing:
            log.warning("no saved position for datasets %s: they start from the beginning", missing)
        return missing
