"""Is a dataset escaped twice? A dataset marked `escaped` (this pipeline's default: every literal
`<` stored as `<<`) must not go through a CPM-Bee `transform.py` that escapes again (the wiki
example in CPM-Bee's README does `text.replace("<", "<<")`): `a << b` would reach the model as
`a <<<< b`, silently. `bee manifest validate` and the trainer's start-up run each such transform
on a few records that hold `<<` and fail when it escapes a second time.

"Escapes a second time" is measured on the strings of the record and of the transform's
output: the number of `<<` grows and so does the longest run of `<` (a `<<` became `<<<<`).
The second condition keeps a transform that copies a text twice from being taken for one
that escapes it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

from corpus.dataset import iter_records

RECORDS_SCANNED = 2000  # records read from the start of the dataset to find some holding `<<`
RECORDS_TRIED = 8  # of those, how many go through the transform
_RUN = re.compile(r"<+")


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield key
            yield from _strings(child)
    elif isinstance(value, list):
        for child in value:
            yield from _strings(child)


def escape_marks(value: Any) -> tuple[int, int]:
    """(number of `<<`, longest run of `<`) over every key and string of a JSON value."""
    count = longest = 0
    for text in _strings(value):
        count += text.count("<<")
        for run in _RUN.findall(text):
            longest = max(longest, len(run))
    return count, longest


def escapes_twice(before: Any, after: Any) -> bool:
    """Whether `after` (a transform's output) escapes `before` (an escaped record) a second time."""
    count_before, run_before = escape_marks(before)
    count_after, run_after = escape_marks(after)
    return count_after > count_before and run_after > run_before


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def check_transform_escaping(
    dataset: str, transform: Callable[[Any, int, random.Random], Any], records: Iterable[Any]
) -> str | None:
    """The problem, or None: run `transform(record, 0, random.Random(i))` on up to `RECORDS_TRIED`
    of `records` that hold `<<`; the message names the dataset and shows one before/after."""
    tried = 0
    for index, record in enumerate(records):
        if tried >= RECORDS_TRIED:
            break
        if escape_marks(record)[0] == 0:
            continue
        tried += 1
        try:
            after = transform(record, 0, random.Random(index))
        except Exception as error:  # the user's script: say which record it failed on
            return f"{dataset}: transform failed on record {index}: {type(error).__name__}: {error}"
        if escapes_twice(record, after):
            return (
                f"{dataset}: the dataset is stored escaped (`escaped: true`: every literal `<` is `<<`) but its "
                f"transform escapes again, so `<<` reaches the model as `<<<<`. Before: {_short(record)} "
                f"After: {_short(after)}. Remove the `.replace(\"<\", \"<<\")` from the transform, or rebuild the "
                f"dataset with `escape.documents: transform` (stored unescaped, marked `escaped: false`)."
            )
    return None


def check_dataset_transform(
    dataset: str, path: str, transform: Callable[[Any, int, random.Random], Any]
) -> str | None:
    """`check_transform_escaping` on the first `RECORDS_SCANNED` records of the dataset at `path`."""
    return check_transform_escaping(dataset, transform, islice(iter_records(path), RECORDS_SCANNED))
