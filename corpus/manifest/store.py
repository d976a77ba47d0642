"""Reading and writing mixture manifests (`datasets.json`) on disk.

Writes are atomic and keep keys in a stable order (the schema's field order, extras after),
so a manifest checked into git changes only where its content changed.
"""

from __future__ import annotations

import os
from pathlib import Path

from corpus.atomic_file import write_text_atomically
from schemas import DatasetEntry, MixtureManifest, load_file


def read_manifest(path: str | os.PathLike) -> MixtureManifest:
    """Load and validate a manifest; raises `schemas.SchemaError` naming the file and field."""
    return load_file(MixtureManifest, path)


def write_manifest(path: str | os.PathLike, manifest: MixtureManifest) -> None:
    """Replace the manifest file atomically (temp file in the same folder, then rename)."""
    write_text_atomically(path, manifest.to_json())


def upsert_entry(path: str | os.PathLike, entry: DatasetEntry) -> MixtureManifest:
    """Add `entry` to the manifest at `path` (created if missing), replacing the entry with the
    same `task_name.dataset_name` in place so the order of the others is kept. Returns the new manifest.
    """
    path = Path(path)
    manifest = with_entry(read_manifest(path) if path.exists() else MixtureManifest([]), entry)
    write_manifest(path, manifest)
    return manifest


def with_entry(manifest: MixtureManifest, entry: DatasetEntry) -> MixtureManifest:
    """`manifest` with `entry` added, or replacing the entry of the same identity in place."""
    entries = list(manifest)
    for index, existing in enumerate(entries):
        if existing.identity == entry.identity:
            entries[index] = entry
            break
    else:
        entries.append(entry)
    return MixtureManifest(entries)
