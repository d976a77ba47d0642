"""Fixtures for the dataset-format tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_fixtures import write_dataset


@pytest.fixture
def small_dataset(tmp_path: Path) -> Path:
    """Two files, 30 records {"i": 0..29}, 64-byte blocks (two records a block)."""
    return write_dataset(
        tmp_path / "ds",
        {"part-0": [{"i": i} for i in range(20)], "part-1": [{"i": i} for i in range(20, 30)]},
    )
