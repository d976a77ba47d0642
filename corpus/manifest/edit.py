"""Edits of a manifest file by identity: set a weight, add a dataset, remove one.

Each reads the file, changes one entry, and writes it back through `store.write_manifest`
(atomic, stable key order), so the other entries and the order of datasets are untouched and
a review diff shows only the edit.
"""

from __future__ import annotations

import os
from typing import Any

from corpus.manifest.store import read_manifest, write_manifest
from schemas import DatasetEntry, MixtureManifest, SchemaError, validate_data


def _index_of(manifest: MixtureManifest, identity: str, path: str | os.PathLike) -> int:
    for index, entry in enumerate(manifest):
        if entry.identity == identity:
            return index
    known = ", ".join(entry.identity for entry in manifest) or "none"
    raise SchemaError(str(path), [f"no dataset {identity!r} (task_name.dataset_name; known: {known})"])


def set_weight(path: str | os.PathLike, identity: str, weight: float) -> MixtureManifest:
    """Set the weight of dataset `identity` (`task_name.dataset_name`); returns the new manifest.

    Raises SchemaError when the file is invalid, the dataset is unknown or the weight invalid.
    """
    manifest = read_manifest(path)
    index = _index_of(manifest, identity, path)
    entries = list(manifest)
    data = entries[index].model_dump(mode="json", exclude_unset=True)
    data["weight"] = weight
    entries[index] = validate_data(DatasetEntry, data, f"{path}: [{index}]")
    updated = MixtureManifest(entries)
    write_manifest(path, updated)
    return updated


def add_entry(path: str | os.PathLike, fields: dict[str, Any]) -> MixtureManifest:
    """Append a dataset built from `fields` (created file when missing); returns the new manifest.

    Raises SchemaError when the fields are invalid or the identity is already there (change
    an existing dataset with `set_weight`, or remove it first).
    """
    entries = list(read_manifest(path)) if os.path.exists(path) else []
    entry = validate_data(DatasetEntry, fields, f"{path}: new entry")
    if any(existing.identity == entry.identity for existing in entries):
        raise SchemaError(str(path), [f"dataset {entry.identity!r} is already in the manifest"])
    updated = MixtureManifest([*entries, entry])
    write_manifest(path, updated)
    return updated


def remove_entry(path: str | os.PathLike, identity: str) -> MixtureManifest:
    """Remove dataset `identity`; returns the new manifest. Raises SchemaError when unknown."""
    manifest = read_manifest(path)
    index = _index_of(manifest, identity, path)
    updated = MixtureManifest([entry for i, entry in enumerate(manifest) if i != index])
    write_manifest(path, updated)
    return updated
