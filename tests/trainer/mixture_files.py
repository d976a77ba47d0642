"""Tiny datasets and manifest files for the data-path tests (imported by name; pytest puts
this folder on sys.path)."""

from __future__ import annotations

import json
from pathlib import Path

from corpus.dataset import build_dataset


def make_dataset(root: Path, name: str, records: list, block_size: int = 512) -> None:
    with build_dataset(root / name, "part-0000", block_size=block_size) as writer:
        for record in records:
            writer.write(record)


def write_manifest(path: Path, entries: list[dict]) -> None:
    """Write entries as they are (no schema check: tests also write broken manifests), as a new
    file each time (as corpus.manifest.write_manifest does), so a change is visible within one clock tick."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entries), encoding="utf-8")
    tmp.replace(path)
