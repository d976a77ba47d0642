"""Shared test fixtures: where the repository and the read-only shared/ folder live."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_cpm_bee() -> Path:
    """`../shared/cpm-bee` (official vocab, 10B config, CCPM sample); tests skip without it."""
    path = SHARED / "cpm-bee"
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path
