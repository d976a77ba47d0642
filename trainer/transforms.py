"""Per-dataset transforms that turn a stored record into CPM-Bee input, with CPM-Bee's semantics.

A manifest entry's `transforms` is either
- a list of mappings (one is drawn per instance): a nested dict whose leaves are either a
  constant string or `$a.b.c`, a path into the record. `*` in a source path matches every
  key at that level and the `*`s of the target path take those keys in order:
  `{"<ans>": {"*": "$answers.*"}}` copies each field of `answers` under `<ans>`;
- or the path of a `transform.py` defining `transform(data, num_sample, r)`, where
  `num_sample` is the number of in-context samples drawn for the instance and `r` a
  `random.Random` started from the same per-instance seed at every call (so the sample
  and its in-context samples see the same random choices). The script is loaded again
  when its file changes, as CPM-Bee does.

Transforms never escape `<`: datasets built by this pipeline are escaped at build time
(`escaped: true`); CPM-Bee's own datasets escape inside their `transform.py`.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Callable
from typing import Any

import numpy as np

from corpus.manifest.lines import resolve_dataset_path
from corpus.manifest.transform_script import TransformScript
from tokenization import record_to_sample

TransformFn = Callable[[Any], Any]


class TransformError(ValueError):
    """A transform that cannot apply to a record (a missing field, a wildcard mismatch)."""


# --------------------------------------------------------------------------- mappings


def _mapping_pairs(mapping: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """(target path, source) for every leaf of a mapping, in the mapping's order."""
    pairs: list[tuple[tuple[str, ...], str]] = []
    for key, value in mapping.items():
        target = prefix + tuple(key.split("."))
        if isinstance(value, dict):
            pairs.extend(_mapping_pairs(value, target))
        elif isinstance(value, str):
            pairs.append((target, value))
        else:
            raise TransformError(f"mapping {'.'.join(target)!r}: value must be a string or a dict, got {value!r}")
    return pairs


def check_mapping(mapping: dict[str, Any]) -> None:
    """Raise TransformError for mappings that can never apply, before any data is read."""
    for target, source in _mapping_pairs(mapping):
        stars = target.count("*")
        if source.startswith("$"):
            if source[1:].split(".").count("*") != stars:
                raise TransformError(
                    f"mapping {'.'.join(target)!r} <- {source!r}: target and source need the same number of `*`"
                )
        elif stars:
            raise TransformError(f"mapping {'.'.join(target)!r}: a constant value cannot have `*` in its target")


def _expand(data: Any, path: list[str], stars: tuple[str, ...], source: str):
    """Yield (keys matched by `*`, value) for every match of `path` in `data`."""
    if not path:
        yield stars, data
        return
    if not isinstance(data, dict):
        raise TransformError(f"source {source!r}: expected an object at {path[0]!r}, found {type(data).__name__}")
    head, rest = path[0], path[1:]
    if head == "*":
        for key, value in data.items():
            yield from _expand(value, rest, stars + (key,), source)
    elif head in data:
        yield from _expand(data[head], rest, stars, source)
    else:
        raise TransformError(f"source {source!r}: field {head!r} not in record (has {sorted(data)[:8]})")


def apply_mapping(data: Any, mapping: dict[str, Any]) -> dict[str, Any]:
    """Build a new sample from `data` by `mapping` (see the module docstring)."""
    assignments: list[tuple[list[str], Any]] = []
    for target, source in _mapping_pairs(mapping):
        if not source.startswith("$"):
            assignments.append((list(target), source))
            continue
        for stars, value in _expand(data, source[1:].split("."), (), source):
            if len(stars) != target.count("*"):
                raise TransformError(f"mapping {'.'.join(target)!r} <- {source!r}: `*` counts differ")
            keys = iter(stars)
            assignments.append(([next(keys) if part == "*" else part for part in target], value))

    result: dict[str, Any] = {}
    for path, value in assignments:
        node = result
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise TransformError(f"mapping target {'.'.join(path)!r}: {part!r} is already a value, not an object")
            node = child
        # copies, so that later targets nested inside a copied object never write into the record
        node[path[-1]] = copy.deepcopy(value) if isinstance(value, (dict, list)) else value
    return result


# --------------------------------------------------------------------------- per-dataset transform


class DatasetTransform:
    """The transforms of one manifest entry; `for_instance` draws what one instance uses."""

    def __init__(
        self, transforms: str | list[dict[str, Any]], base_dir: str | os.PathLike, name: str, escaped: bool = False
    ) -> None:
        self.escaped = escaped  # the dataset's `<` were escaped at build time
        self.script: TransformScript | None = None
        self.mappings: list[dict[str, Any]] = []
        if isinstance(transforms, str):
            self.script = TransformScript(resolve_dataset_path(transforms, base_dir), name)
            self.script.function()  # fail at load time, not in the middle of training
        else:
            for mapping in transforms:
                check_mapping(mapping)
            self.mappings = list(transforms)

    def for_instance(self, rng: np.random.Generator, num_incontext: int) -> TransformFn:
        """The function applied to the sample and its in-context samples of one instance.

        Draws from `rng` only what the reference draws: a seed for a script, an index into
        a non-empty list of mappings, nothing when there is no transform. Without a transform
        a record is used as the token shards use it (`tokenization.record_to_sample`): a
        plain-text record `{"text": t}` becomes `{"input": "", "<ans>": t}`.
        """
        if self.script is not None:
            function = self.script.function()
            seed = int(rng.integers(0, 2**63 - 1))
            return lambda data: function(data, num_incontext, random.Random(seed))
        if not self.mappings:
            escaped = self.escaped
            return lambda data: record_to_sample(data, escaped)
        mapping = self.mappings[int(rng.integers(len(self.mappings)))]
        return lambda data: apply_mapping(data, mapping)

