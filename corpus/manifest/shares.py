"""Effective shares of a mixture: what fraction of samples (and of tokens) each dataset gets.

CPM-Bee's trainer picks a dataset with probability `weight × nlines / Σ weight × nlines`; a
dataset's share of training tokens is then `weight × ntokens / Σ weight × ntokens`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from corpus.manifest.lines import LineCount
from schemas import MixtureManifest


@dataclass(frozen=True)
class Shares:
    """Fractions (0..1, summing to 1) keyed by identity, or None with the reason they are unknown."""

    values: dict[str, float] | None
    why_unknown: str | None = None

    def get(self, identity: str) -> float | None:
        return None if self.values is None else self.values.get(identity)


def normalised_shares(weights: Mapping[str, float], amounts: Mapping[str, int | None], what: str) -> Shares:
    """`weight × amount`, normalised over all datasets.

    Takes weights and amounts (lines or tokens) keyed by identity; `what` names the amount in
    the reason given when shares are unknown. A dataset of weight 0 needs no amount; any other
    dataset without one makes every share unknown, since the total is then unknown. A total of
    0 (an empty mixture, which CPM-Bee's trainer refuses) also leaves shares unknown.
    """
    products: dict[str, float] = {}
    missing = []
    for identity, weight in weights.items():
        amount = amounts.get(identity)
        if weight == 0:
            products[identity] = 0.0
        elif amount is None:
            missing.append(identity)
        else:
            products[identity] = weight * amount
    if missing:
        return Shares(None, f"{what} unknown for {', '.join(missing)}")
    total = sum(products.values())
    if not weights:
        return Shares({}, None)
    if total <= 0:
        return Shares(None, f"weight × {what} sums to 0 (an empty mixture)")
    return Shares({identity: product / total for identity, product in products.items()})


def sampling_shares(manifest: MixtureManifest, counts: Mapping[str, LineCount]) -> Shares:
    """Each dataset's probability of being drawn: `weight × nlines`, normalised."""
    weights = {entry.identity: entry.weight for entry in manifest}
    nlines = {identity: count.nlines for identity, count in counts.items()}
    return normalised_shares(weights, nlines, "nlines")


def token_shares(manifest: MixtureManifest) -> Shares:
    """Each dataset's expected share of training tokens: `weight × ntokens`, normalised."""
    weights = {entry.identity: entry.weight for entry in manifest}
    ntokens = {entry.identity: entry.ntokens for entry in manifest}
    return normalised_shares(weights, ntokens, "ntokens")
