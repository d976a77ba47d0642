"""Re-tokenize a whole mixture manifest: refresh stale token shards and write token statistics.

`retokenize_manifest(manifest_path, vocab_path)` is what the scheduled re-tokenization flow and
`bee tokenize datasets.json --vocab V` call. For each dataset of the manifest it brings the token
shards up to date (`shards.tokenize_dataset`: only stale shards are redone) and writes into the
dataset's manifest entry: `ntokens`, `fingerprints.vocab`, `token_stats` (counts, unknown-token
rate, ext-table usage, length percentiles) and `token_shards` (the shards folder, relative to the
manifest when the dataset path is). A dataset that fails is reported and the others go on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel, Field

from corpus.manifest import read_manifest, upsert_entry
from corpus.manifest.lines import resolve_dataset_path
from schemas import DatasetEntry, Fingerprints
from tokenization.token_shards import DEFAULT_MAX_DEPTH, DEFAULT_SHARDS_DIR, TokenizeReport, tokenize_dataset
from tokenization.token_stats import TokenStats
from tokenization.vocab import file_fingerprint

TOKEN_SHARDS_KEY = "token_shards"  # manifest entry extra key: where the dataset's shards are
TOKEN_STATS_KEY = "token_stats"  # manifest entry extra key: `TokenStats`


class DatasetRetokenized(BaseModel):
    """One dataset of a re-tokenization: which shards were redone, and its statistics."""

    identity: str = Field(description="`task_name.dataset_name`.")
    path: str = Field(description="The dataset folder.")
    shards_dir: str
    redone: list[str] = Field(default_factory=list, description="Data files whose shard was (re)made.")
    fresh: list[str] = Field(default_factory=list, description="Data files whose shard was already fresh.")
    removed: list[str] = Field(default_factory=list, description="Shards dropped: their data file is gone or masked.")
    stats: TokenStats


class RetokenizeReport(BaseModel):
    """What `retokenize_manifest` did, dataset by dataset."""

    manifest: str
    vocab_path: str
    vocab_fingerprint: str
    datasets: list[DatasetRetokenized] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict, description="identity -> error, for datasets that could not be tokenized.")
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def shards_redone(self) -> int:
        return sum(len(d.redone) for d in self.datasets)

    @property
    def ntokens(self) -> int:
        return sum(d.stats.ntokens for d in self.datasets)


def entry_shards_dir(manifest_dir: Path, entry: DatasetEntry) -> Path:
    """Where a manifest entry's token shards are: its `token_shards` (relative to the manifest's
    folder unless absolute), else `<dataset>/token-shards`."""
    recorded = (entry.model_extra or {}).get(TOKEN_SHARDS_KEY)
    if isinstance(recorded, str) and recorded:
        return resolve_dataset_path(recorded, manifest_dir)
    return resolve_dataset_path(entry.path, manifest_dir) / DEFAULT_SHARDS_DIR


def _with_token_stats(entry: DatasetEntry, report: TokenizeReport, shards_dir: str) -> DatasetEntry:
    fingerprints = (entry.fingerprints or Fingerprints()).model_copy(update={"vocab": report.vocab_fingerprint})
    return entry.model_copy(
        update={
            "ntokens": report.stats.ntokens,
            "fingerprints": fingerprints,
            TOKEN_STATS_KEY: report.stats.model_dump(mode="json"),
            TOKEN_SHARDS_KEY: shards_dir,
        }
    )


def retokenize_manifest(
    manifest_path: str | os.PathLike,
    vocab_path: str | os.PathLike,
    max_depth: int = DEFAULT_MAX_DEPTH,
    workers: int = 1,
    progress: bool = False,
) -> RetokenizeReport:
    """Refresh the token shards of every dataset in a manifest and record their token statistics.

    Takes: the manifest (`datasets.json`), the vocabulary, `max_depth` of segment buckets,
    `workers` processes per dataset, `progress` to show a bar per dataset on stderr.
    Returns: a `RetokenizeReport`; datasets that failed are in `failed` (check `report.ok`).
    Raises: SchemaError for a broken manifest, FileNotFoundError / VocabError for the vocabulary.
    The manifest file is updated entry by entry (atomically), only for datasets that succeeded.
    """
    started = time.perf_counter()
    manifest_path = Path(manifest_path)
    manifest = read_manifest(manifest_path)
    report = RetokenizeReport(
        manifest=str(manifest_path), vocab_path=str(vocab_path), vocab_fingerprint=file_fingerprint(vocab_path)
    )
    for entry in manifest:
        dataset = resolve_dataset_path(entry.path, manifest_path.parent)
        shards_dir = entry_shards_dir(manifest_path.parent, entry)
        try:
            result = tokenize_dataset(
                dataset, vocab_path, shards_dir, max_depth=max_depth, workers=workers, progress=progress
            )
        except (OSError, ValueError) as error:  # DatasetCorrupt, SchemaError and VocabError are ValueErrors
            report.failed[entry.identity] = f"{dataset}: {type(error).__name__}: {error}"
            continue
        # Keep the path style of the entry: relative to the manifest when the dataset path is.
        recorded = str(shards_dir) if Path(entry.path).is_absolute() else os.path.relpath(shards_dir, manifest_path.parent)
        # The entry as it is now: someone may have edited the manifest while this dataset ran.
        current = next((e for e in read_manifest(manifest_path) if e.identity == entry.identity), entry)
        upsert_entry(manifest_path, _with_token_stats(current, result, recorded))
        report.datasets.append(
            DatasetRetokenized(
                identity=entry.identity, path=str(dataset), shards_dir=str(shards_dir),
                redone=result.redone, fresh=result.fresh, removed=result.removed, stats=result.stats,
            )
        )
    report.seconds = time.perf_counter() - started
    return report
