"""Helpers for the dataset-format tests: small datasets built inline (a unique module name,
so test modules can import it whatever other conftest.py files pytest has loaded)."""

from __future__ import annotations

from pathlib import Path

from corpus.dataset import build_dataset


def write_dataset(path: Path, files: dict[str, list], block_size: int = 64, serializer: str = "pickle") -> Path:
    """One data file per entry of `files` (name -> records), in order."""
    for name, records in files.items():
        with build_dataset(path, name, block_size=block_size, serializer=serializer) as writer:
            for record in records:
                writer.write(record)
    return path
