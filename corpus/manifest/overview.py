"""One manifest at a glance: each dataset with its effective shares and counts (for `show`
and for git's textconv)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from corpus.manifest.diff import effective_fields
from corpus.manifest.lines import LineCount
from corpus.manifest.shares import sampling_shares, token_shares
from schemas import MixtureManifest


@dataclass(frozen=True)
class DatasetRow:
    """One dataset: its settings (`fields`, dotted, as `effective_fields` gives them), shares
    (fractions, None when unknown) and counts."""

    identity: str
    weight: float
    share: float | None
    token_share: float | None
    lines: LineCount
    nbytes: int | None
    ntokens: int | None
    content_fingerprint: str | None
    vocab_fingerprint: str | None
    fields: dict[str, Any]


@dataclass(frozen=True)
class ManifestOverview:
    rows: tuple[DatasetRow, ...]
    shares_unknown: str | None
    token_shares_unknown: str | None

    def total(self, name: str) -> int | None:
        """Sum of `nlines`, `nbytes` or `ntokens`; None when any dataset's is unknown."""
        values = [row.lines.nlines if name == "nlines" else getattr(row, name) for row in self.rows]
        return None if any(value is None for value in values) else sum(values)


def overview(manifest: MixtureManifest, counts: Mapping[str, LineCount]) -> ManifestOverview:
    """Takes a manifest and its line counts by identity; returns its `ManifestOverview`."""
    unknown = LineCount(None, "unknown", "no line count given")
    lines = {entry.identity: counts.get(entry.identity, unknown) for entry in manifest}
    shares, tokens = sampling_shares(manifest, lines), token_shares(manifest)
    rows = tuple(
        DatasetRow(
            identity=entry.identity,
            weight=entry.weight,
            share=shares.get(entry.identity),
            token_share=tokens.get(entry.identity),
            lines=lines[entry.identity],
            nbytes=entry.nbytes,
            ntokens=entry.ntokens,
            content_fingerprint=entry.fingerprints.content if entry.fingerprints else None,
            vocab_fingerprint=entry.fingerprints.vocab if entry.fingerprints else None,
            fields=effective_fields(entry),
        )
        for entry in manifest
    )
    return ManifestOverview(rows, shares.why_unknown, tokens.why_unknown)
