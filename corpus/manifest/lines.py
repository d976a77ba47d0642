"""How many lines each dataset of a manifest has: the `nlines` that sampling weights multiply.

A manifest written by this toolchain records `nlines`; one written by CPM-Bee's tools does not,
and then the count comes from the dataset's `meta.bin` (when the folder is there) or is unknown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from corpus.dataset import DatasetCorrupt, read_meta
from schemas import DatasetEntry, FileInfo, MixtureManifest

LineSource = Literal["manifest", "meta.bin", "unknown"]


@dataclass(frozen=True)
class LineCount:
    """The line count of one dataset and where it came from; `why_unknown` says what was missing."""

    nlines: int | None
    source: LineSource
    why_unknown: str | None = None


def sampling_nlines(infos: list[FileInfo]) -> int:
    """The `nlines` CPM-Bee's trainer multiplies a dataset's weight by: the sum over every file
    listed in `meta.bin`, masked ones included (`DistributedDataset._nlines` counts them all;
    a mask only stops the reader from visiting the file's blocks)."""
    return sum(info.nlines for info in infos)


def resolve_dataset_path(path: str, base_dir: str | os.PathLike) -> Path:
    """CPM-Bee's rule: an absolute path is used as is, a relative one is relative to the folder
    holding the manifest file."""
    return Path(path) if os.path.isabs(path) else Path(base_dir) / path


def line_count(entry: DatasetEntry, base_dir: str | os.PathLike | None) -> LineCount:
    """The line count of `entry`: its own `nlines` when set, else `meta.bin`'s, else unknown.

    `base_dir` is the manifest's folder; None means "do not look on disk" (used for a manifest
    whose folder is unknown, such as git's textconv temp file). Never raises: an unreadable
    `meta.bin` makes the count unknown and says why.
    """
    if entry.nlines is not None:
        return LineCount(entry.nlines, "manifest")
    if base_dir is None:
        return LineCount(None, "unknown", "no nlines in the manifest")
    folder = resolve_dataset_path(entry.path, base_dir)
    try:
        return LineCount(sampling_nlines(read_meta(folder)), "meta.bin")
    except FileNotFoundError:
        return LineCount(None, "unknown", f"no nlines in the manifest and no meta.bin in {folder}")
    except (DatasetCorrupt, OSError, UnicodeDecodeError) as error:
        return LineCount(None, "unknown", f"no nlines in the manifest and meta.bin unreadable: {error}")


def line_counts(manifest: MixtureManifest, base_dir: str | os.PathLike | None) -> dict[str, LineCount]:
    """`line_count` of every entry, keyed by identity (`task_name.dataset_name`)."""
    return {entry.identity: line_count(entry, base_dir) for entry in manifest}
