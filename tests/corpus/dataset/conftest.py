"""Fixtures for the dataset-format tests: small datasets built inline."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus.dataset import build_dataset


def write_dataset(path: Path, files: dict[str, list], block_size: int = 64, serializer: str = "pickle") -> Path:
    """One data file per entry of `files` (name -> records), in order."""
    for name, records in files.items():
        with build_dataset(path, name, block_size=block_size, serializer=serializer) as writer:
            for record in records:
                writer.write(record)
    return path


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """Two files, 30 records {"i": 0..29}, 64-byte blocks (two records a block)."""
    return write_dataset(
        tmp_path / "ds",
        {"part-0": [{"i": i} for i in range(20)], "part-1": [{"i": i} for i in range(20, 30)]},
    )
