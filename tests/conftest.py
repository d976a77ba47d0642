"""Shared test fixtures: where the repository and the read-only shared/ folder live."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# beside the checkout; BEE_SHARED names it for a checkout elsewhere (a git worktree)
SHARED = Path(os.environ.get("BEE_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_cpm_bee() -> Path:
    """`../shared/cpm-bee` (official vocab, 10B config, CCPM sample); tests skip without it."""
    path = SHARED / "cpm-bee"
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path
