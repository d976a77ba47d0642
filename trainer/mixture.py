"""The datasets of a mixture manifest, opened for one rank, and the draw of which one feeds the next instance.

Each manifest entry becomes a `Source`: a `corpus.dataset.DistributedDataset` reading this
rank's blocks, the entry's transforms and its in-context weights. A dataset is drawn with
probability proportional to `weight x nlines` (CPM-Bee's rule) or, with
`weight_by="tokens"`, `weight x ntokens`. As in CPM-Bee, the manifest is re-read when the
file changes (mtime, size or inode): entries keep their reader (and position) by
`task_name.dataset_name` (a changed entry looks for its token shards again), new entries are
opened, removed ones dropped; a manifest that
fails to load is reported and the previous one kept. A dataset whose `meta.bin` grows while it is read is re-weighted.

Given the tokenizer's vocabulary fingerprint, a dataset without a transform also opens its
fresh token shards (`tokenization.DatasetTokenRows`, found as `bee tokenize` / the retokenize
flow left them): its records then come as rows of ids instead of being tokenized online.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from corpus.atomic_file import file_signature
from corpus.dataset import DistributedDataset
from corpus.dataset.reader import rank_blocks
from corpus.manifest import read_manifest
from corpus.manifest.escape_check import check_dataset_transform
from corpus.manifest.lines import resolve_dataset_path
from corpus.manifest.transform_script import TransformScriptError
from schemas import DatasetEntry, MixtureManifest
from tokenization import DatasetTokenRows
from tokenization.retokenize import entry_shards_dir
from trainer.transforms import DatasetTransform

log = logging.getLogger(__name__)

WeightBy = Literal["lines", "tokens"]


def dataset_transform(entry: DatasetEntry, base_dir: Path, path: Path) -> DatasetTransform:
    """The entry's transform, checked at start-up: a `transform.py` must not escape a dataset
    stored escaped a second time (corpus.manifest.escape_check; raises TransformScriptError
    naming the dataset, with a before/after record)."""
    transform = DatasetTransform(entry.transforms, base_dir, entry.identity, bool(entry.escaped))
    if entry.escaped and transform.script is not None:
        problem = check_dataset_transform(entry.identity, str(path), transform.script.function())
        if problem:
            raise TransformScriptError(problem)
    return transform


@dataclass
class Source:
    """One dataset of the mixture as this rank reads it."""

    entry: DatasetEntry
    path: Path
    reader: DistributedDataset
    transform: DatasetTransform
    incontext_p: NDArray[np.float64]  # probability of drawing 0, 1, 2, ... in-context samples
    nlines: int  # records in the whole dataset (all ranks) when the weights were computed
    token_rows: DatasetTokenRows | None = None  # fresh token shards, for a dataset without a transform

    @property
    def identity(self) -> str:
        return self.entry.identity


def _incontext_p(entry: DatasetEntry) -> NDArray[np.float64]:
    weights = np.asarray(entry.incontext_weight, dtype=np.float64)
    return weights / weights.sum()


class Mixture:
    """The sources of a manifest for `rank` of `world_size`, kept in step with the file."""

    def __init__(
        self,
        manifest_path: str | os.PathLike,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        weight_by: WeightBy = "lines",
        *,
        vocab_fingerprint: str | None = None,
        max_depth: int = 16,
    ) -> None:
        """`vocab_fingerprint` (the tokenizer's) and `max_depth` select the token shards to use;
        without a fingerprint every record is tokenized online."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        if weight_by not in ("lines", "tokens"):
            raise ValueError(f"weight_by must be 'lines' or 'tokens', got {weight_by!r}")
        self.manifest_path = Path(manifest_path)
        self.base_dir = self.manifest_path.resolve().parent
        self.rank, self.world_size, self.seed, self.weight_by = rank, world_size, seed, weight_by
        self.vocab_fingerprint, self.max_depth = vocab_fingerprint, max_depth
        self.sources: list[Source] = []
        self._manifest_signature = file_signature(self.manifest_path)
        self._apply(read_manifest(self.manifest_path))

    # -------------------------------------------------------------- opening and reloading

    def _open(self, entry: DatasetEntry) -> Source:
        path = resolve_dataset_path(entry.path, self.base_dir)
        # each dataset shuffles its blocks with its own seed, the same on every rank
        reader_seed = int(np.random.SeedSequence([self.seed, zlib.crc32(entry.identity.encode())]).generate_state(1)[0])
        reader = DistributedDataset(str(path), self.rank, self.world_size, shuffle=True, seed=reader_seed)
        return Source(
            entry=entry,
            path=path,
            reader=reader,
            transform=dataset_transform(entry, self.base_dir, path),
            incontext_p=_incontext_p(entry),
            nlines=reader.nlines,
            token_rows=self._token_rows(entry, path, reader),
        )

    def _token_rows(self, entry: DatasetEntry, path: Path, reader: DistributedDataset) -> DatasetTokenRows | None:
        if self.vocab_fingerprint is None or entry.transforms:
            return None
        try:
            rows = DatasetTokenRows.open(
                path, self.vocab_fingerprint, escaped=bool(entry.escaped),
                shards_dir=entry_shards_dir(self.base_dir, entry), max_depth=self.max_depth,
            )
        except (OSError, ValueError) as error:  # a broken shards.json must not stop training
            log.warning("%s: token shards unusable, tokenizing online: %s", entry.identity, error)
            return None
        files = sum(1 for info in reader.files if not info.mask)
        served = 0 if rows is None else len(rows.shards)
        log.info("%s: %d of %d data files have fresh token shards", entry.identity, served, files)
        return rows

    def _apply(self, manifest: MixtureManifest) -> None:
        """Make the sources match `manifest`, keeping the readers of entries that stay.

        All or nothing: when an entry cannot be opened or the weights are all zero, the
        readers opened for it are closed and the current sources stay as they are.
        """
        current = {source.identity: source for source in self.sources}
        sources: list[Source] = []
        opened: list[Source] = []
        try:
            for entry in manifest:
                source = current.get(entry.identity)
                if source is None or source.entry.path != entry.path:
                    source = self._open(entry)
                    opened.append(source)
                else:
                    transform, token_rows = source.transform, source.token_rows
                    if (source.entry.transforms, source.entry.escaped) != (entry.transforms, entry.escaped):
                        transform = dataset_transform(entry, self.base_dir, source.path)
                    if source.entry != entry:  # e.g. the retokenize flow recorded new shards
                        token_rows = self._token_rows(entry, source.path, source.reader)
                    # a copy, so that the current mixture is untouched if a later entry fails
                    source = Source(entry, source.path, source.reader, transform, _incontext_p(entry), source.nlines, token_rows)
                sources.append(source)
            weights = self._weights(sources)
        except BaseException:
            for source in opened:
                source.reader.close()
            raise
        kept = {id(source.reader) for source in sources}
        for source in self.sources:
            if id(source.reader) not in kept:
                source.reader.close()
        self.sources, self._p = sources, weights

    def _weights(self, sources: list[Source]) -> NDArray[np.float64]:
        sizes = []
        for source in sources:
            if self.weight_by == "tokens":
                if source.entry.ntokens is None:
                    raise ValueError(
                        f"{self.manifest_path}: dataset {source.identity} has no ntokens; "
                        "weight by tokens needs token counts in the manifest (or use weight_by='lines')"
                    )
                sizes.append(source.entry.ntokens)
            else:
                sizes.append(source.nlines)
        readable = np.array([self._rank_has_blocks(source) for source in sources], dtype=np.float64)
        weights = np.array([s.entry.weight for s in sources], dtype=np.float64) * np.array(sizes, dtype=np.float64)
        weights *= readable
        total = weights.sum()
        if not sources or total <= 0:
            raise ValueError(
                f"{self.manifest_path}: no dataset has weight x {self.weight_by} > 0 and a block for rank "
                f"{self.rank} of {self.world_size}; nothing to sample (small datasets: build them with a smaller block_size)"
            )
        return weights / total

    def _rank_has_blocks(self, source: Source) -> bool:
        """A dataset with fewer unmasked blocks than ranks has none for some ranks (a rank reads
        whole blocks): those ranks leave it out of their draw instead of failing on it."""
        readable = any(len(rank_blocks(info, self.rank, self.world_size)) for info in source.reader.files if not info.mask)
        if not readable:
            log.warning("%s: no block of this dataset falls to rank %d of %d; this rank does not draw it",
                        source.identity, self.rank, self.world_size)
        return readable

    def refresh(self) -> bool:
        """Re-read the manifest if the file changed. Returns True when the sources changed.

        A manifest that fails to load or validate is logged and the previous mixture kept,
        so a half-edited file never stops training; it is tried again at its next change.
        """
        try:
            signature = file_signature(self.manifest_path)
        except OSError as error:
            log.error("manifest %s unreadable, keeping the current mixture: %s", self.manifest_path, error)
            return False
        if signature == self._manifest_signature:
            return False
        self._manifest_signature = signature
        try:
            self._apply(read_manifest(self.manifest_path))
        except Exception as error:  # any bad edit: keep training on the previous mixture
            log.error("manifest %s changed but cannot be used, keeping the current mixture: %s", self.manifest_path, error)
            return False
        log.info("manifest %s reloaded: %d datasets", self.manifest_path, len(self.sources))
        return True

    # -------------------------------------------------------------- drawing

    @property
    def probabilities(self) -> dict[str, float]:
        """Sampling probability of each dataset, by identity."""
        return {source.identity: float(p) for source, p in zip(self.sources, self._p)}

    def choose(self, rng: np.random.Generator) -> Source:
        """Draw the dataset of the next instance.

        As in CPM-Bee, when the drawn dataset's reader saw its meta.bin grow (its nlines
        changed), all weights are recomputed and the draw repeated.
        """
        while True:
            source = self.sources[int(rng.choice(len(self.sources), p=self._p))]
            if source.reader.nlines == source.nlines:
                return source
            for each in self.sources:
                each.nlines = each.reader.nlines
            self._p = self._weights(self.sources)

    # -------------------------------------------------------------- checkpoint state

    def state_dict(self) -> dict[str, Any]:
        """Every reader's position, by dataset identity."""
        return {source.identity: source.reader.state_dict() for source in self.sources}

    def load_state_dict(self, state: dict[str, Any]) -> list[str]:
        """Restore reader positions; returns the identities with no saved state (they start fresh)."""
        missing = []
        for source in self.sources:
            if source.identity in state:
                source.reader.load_state_dict(state[source.identity], strict=True)
            else:
                missing.append(source.identity)
        return missing
