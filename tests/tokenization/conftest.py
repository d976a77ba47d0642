"""Shared fixtures: the golden vocabulary (a subset of CPM-Bee's) and its expected outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tokenization import CPMBeeTokenizer
from tokenization.longest_match import compiled_available

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(
    scope="session",
    params=[
        "python",
        pytest.param("c", marks=pytest.mark.skipif(not compiled_available(), reason="C engine not built")),
    ],
)
def golden_tokenizer(request: pytest.FixtureRequest) -> CPMBeeTokenizer:
    """The tokenizer over the golden vocab, once per plain-text engine."""
    return CPMBeeTokenizer(GOLDEN / "vocab.txt", engine=request.param)


@pytest.fixture(scope="session")
def golden_encode() -> dict[str, Any]:
    return json.loads((GOLDEN / "encode.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def golden_convert() -> list[dict[str, Any]]:
    return json.loads((GOLDEN / "convert.json").read_text(encoding="utf-8"))["convert"]


def _segment_by_definition(text: str, pieces: dict[str, int]) -> list[int | str]:
    """CPM-Bee's plain-text rule written as plainly as possible (the spec the fast matcher
    must meet): at each position take the longest token starting there; a position where none
    starts is unknown, and consecutive unknown characters are one span (returned as its text)."""
    longest = max(map(len, pieces), default=1)
    out: list[int | str] = []
    pos = 0
    while pos < len(text):
        for length in range(min(longest, len(text) - pos), 0, -1):
            if text[pos : pos + length] in pieces:
                out.append(pieces[text[pos : pos + length]])
                pos += length
                break
        else:
            if out and isinstance(out[-1], str):
                out[-1] += text[pos]
            else:
                out.append(text[pos])
            pos += 1
    return out


@pytest.fixture(scope="session")
def segment_by_definition():
    """The reference rule for plain-text segmentation, as a function (text, pieces) -> list."""
    return _segment_by_definition
