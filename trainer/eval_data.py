"""Evaluation samples: `(task, sample)` pairs from a JSONL file, a dataset folder or a mixture manifest.

What `bee eval --data` reads and what a training run's task evaluation reads from its
`eval_manifest` (trainer/task_eval.py): one reader, so both score the same samples.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from corpus.dataset import iter_records
from corpus.manifest.lines import resolve_dataset_path
from corpus.manifest.store import read_manifest
from trainer.transforms import DatasetTransform


def _jsonl(path: Path, task: str) -> Iterator[tuple[str, Any]]:
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield task, json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON: {error.msg}") from None


def manifest_samples(path: Path, limit: int | None = None) -> Iterator[tuple[str, Any]]:
    """Each entry's records (its first `limit` when set), its transforms applied as in training
    (no in-context samples); task: the entry's `task_name`."""
    rng = np.random.default_rng(0)
    for entry in read_manifest(path):
        transform = DatasetTransform(entry.transforms, path.parent, entry.identity, bool(entry.escaped))
        for record in islice(iter_records(resolve_dataset_path(entry.path, path.parent)), limit):
            yield entry.task_name, transform.for_instance(rng, 0)(record)


def eval_samples(data: str, task: str | None = None, limit: int | None = None) -> Iterator[tuple[str, Any]]:
    """`(task, sample)` pairs of one `--data` argument: a JSONL file of structured samples
    (task: the file's name), a binary dataset folder (task: the folder's name) or a mixture
    manifest (task: each entry's `task_name`); `task` overrides the name. With `limit`, the
    first `limit` samples of each task (a dataset is read no further than that)."""
    path = Path(data)
    if path.is_dir():
        name = task or path.name
        pairs: Iterable[tuple[str, Any]] = ((name, record) for record in islice(iter_records(path), limit))
    elif path.suffix == ".json" and path.read_text(encoding="utf-8-sig").lstrip().startswith("["):
        pairs = (((task or name), sample) for name, sample in manifest_samples(path, limit))
    else:
        pairs = islice(_jsonl(path, task or path.name.split(".")[0]), limit)
    yield from limited(pairs, limit)


def limited(pairs: Iterable[tuple[str, Any]], limit: int | None) -> Iterator[tuple[str, Any]]:
    """At most `limit` samples of each task (all when `limit` is None), in order."""
    seen: Counter[str] = Counter()
    for task, sample in pairs:
        if limit is None or seen[task] < limit:
            seen[task] += 1
            yield task, sample
