"""What a training run will draw from each dataset of a mixture: samples, tokens and epochs.

A manifest says how datasets are weighted; a run config says how much is trained
(`max_steps` optimizer steps of `batch_size × grad_accumulation × world_size` rows of
`max_length` tokens). Together they say how often each dataset will be seen, which is what a
reviewer of a mixture change needs to know: a small dataset at a high weight is repeated many
times, a large one at a low weight is never seen whole.

The arithmetic follows the trainer (`trainer/mixture.py`, `trainer/stream.py`):

- an *instance* comes from dataset d with probability p_d (`weight × nlines`, or
  `weight × ntokens` with `weight_by: tokens`, normalised);
- it holds 1 + k samples of d, k drawn by `incontext_weight` (weights of 0, 1, 2, ... in-context
  samples), so E[samples] = 1 + Σ k·w_k / Σ w_k;
- a sample of d has `ntokens / nlines` tokens on average (counted by `bee tokenize`);
- instances are packed into rows; a step holds `rows × max_length × fill` tokens, where `fill`
  is the fraction of a row the packer fills (1.0 unless measured by an earlier run).

So a step takes I = rows × max_length × fill / Σ_d p_d × E[samples_d] × tokens_d instances,
dataset d gives `max_steps × I × p_d × E[samples_d]` samples over the run, and its epochs are
those samples over its `nlines`. These are expectations: random draws spread around them,
and instances longer than `max_length` (which the trainer rejects) are not modelled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from corpus.manifest.lines import LineCount
from corpus.manifest.shares import normalised_shares
from schemas import MixtureManifest
from schemas.run_config import RunConfig

DEFAULT_MAX_EPOCHS = 4.0  # repeating data more than ~4 times stops helping (Muennighoff et al., 2023)

Flag = Literal["repeated", "partly seen"]


@dataclass(frozen=True)
class RunShape:
    """How much one run trains: steps, rows per step (all ranks), tokens per row, packing fill."""

    max_steps: int
    rows_per_step: int
    max_length: int
    weight_by: Literal["lines", "tokens"] = "lines"
    fill: float = 1.0
    fill_source: str = "assumed: rows packed full"

    @classmethod
    def of_run(cls, run: RunConfig, world_size: int = 1, fill: float | None = None,
               metrics: str | Path | None = None) -> RunShape:
        """The shape of `run` on `world_size` ranks; `fill` given, or measured from an earlier
        run's metrics JSONL (`metrics`), or assumed 1.0."""
        if run.max_steps is None:  # an `epochs` fine-tuning run: each pass reads a dataset about weight times
            raise ValueError(f"the run trains for epochs: {run.epochs}, not a number of steps; its draws per dataset "
                             "are weight x epochs passes (set max_steps to see them by steps)")
        rows = run.data.batch_size * run.optimizer.grad_accumulation * world_size
        shape = cls(run.max_steps, rows, run.data.max_length, run.data.weight_by)
        if fill is not None:
            return shape.with_fill(fill, "given")
        if metrics is not None:
            return shape.with_fill(measured_fill(metrics, rows * run.data.max_length), f"measured in {metrics}")
        return shape

    def with_fill(self, fill: float, source: str) -> RunShape:
        if not 0 < fill <= 1:
            raise ValueError(f"packing fill must be in (0, 1], got {fill}")
        return RunShape(self.max_steps, self.rows_per_step, self.max_length, self.weight_by, fill, source)

    @property
    def tokens(self) -> float:
        """Tokens the whole run trains on."""
        return self.max_steps * self.rows_per_step * self.max_length * self.fill


def measured_fill(metrics: str | Path, tokens_per_full_step: int) -> float:
    """Mean fraction of a step's row capacity filled with tokens, over the `train` records of a
    trainer metrics JSONL. Raises ValueError when it holds none."""
    tokens = []
    with open(metrics, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record.get("kind") == "train" and record.get("tokens"):
                tokens.append(record["tokens"])
    if not tokens:
        raise ValueError(f"{metrics}: no training steps recorded; cannot measure the packing fill")
    return min(1.0, sum(tokens) / len(tokens) / tokens_per_full_step)


@dataclass(frozen=True)
class DatasetDraw:
    """What the run draws from one dataset (None where unknown)."""

    identity: str
    share: float | None  # probability an instance comes from it
    samples: float | None  # samples drawn over the run
    tokens: float | None  # tokens trained on over the run
    epochs: float | None  # samples / nlines
    flag: Flag | None


@dataclass(frozen=True)
class RunDraws:
    """Per-dataset draws of a run over a manifest, or why they are unknown."""

    shape: RunShape
    max_epochs: float
    datasets: dict[str, DatasetDraw]
    why_unknown: str | None = None

    def get(self, identity: str) -> DatasetDraw | None:
        return self.datasets.get(identity)

    @property
    def flagged(self) -> list[DatasetDraw]:
        return [draw for draw in self.datasets.values() if draw.flag is not None]


def expected_samples_per_instance(incontext_weight: list[float]) -> float:
    """1 + the mean number of in-context samples that `incontext_weight` draws."""
    total = sum(incontext_weight)
    return 1.0 + sum(k * w for k, w in enumerate(incontext_weight)) / total


def run_draws(manifest: MixtureManifest, counts: Mapping[str, LineCount], shape: RunShape,
              max_epochs: float = DEFAULT_MAX_EPOCHS) -> RunDraws:
    """The draws of a run shaped `shape` over `manifest` (line counts from `line_counts`).

    Needs `nlines` and `ntokens` of every dataset with a weight; without them the draws are
    unknown and `why_unknown` says which dataset lacks what.
    """
    weights = {entry.identity: entry.weight for entry in manifest}
    nlines = {identity: count.nlines for identity, count in counts.items()}
    ntokens = {entry.identity: entry.ntokens for entry in manifest}
    amounts = ntokens if shape.weight_by == "tokens" else nlines
    shares = normalised_shares(weights, amounts, "n" + shape.weight_by)
    missing = [identity for identity, weight in weights.items()
               if weight > 0 and (not nlines.get(identity) or not ntokens.get(identity))]
    if shares.values is None or missing:
        why = shares.why_unknown or (
            f"nlines or ntokens unknown for {', '.join(missing)} (`bee tokenize` records ntokens in the manifest)")
        empty = {identity: DatasetDraw(identity, shares.get(identity), None, None, None, None) for identity in weights}
        return RunDraws(shape, max_epochs, empty, why)

    per_instance = {entry.identity: expected_samples_per_instance(entry.incontext_weight) for entry in manifest}
    instance_tokens = {
        identity: min(shape.max_length, per_instance[identity] * ntokens[identity] / nlines[identity])
        for identity, weight in weights.items() if weight > 0
    }
    tokens_per_instance = sum(shares.values[identity] * n for identity, n in instance_tokens.items())
    instances = shape.tokens / tokens_per_instance
    draws = {}
    for identity, share in shares.values.items():
        if share == 0:
            draws[identity] = DatasetDraw(identity, 0.0, 0.0, 0.0, 0.0, None)
            continue
        samples = instances * share * per_instance[identity]
        epochs = samples / nlines[identity]
        flag: Flag | None = "repeated" if epochs > max_epochs else "partly seen" if epochs < 1 else None
        draws[identity] = DatasetDraw(identity, share, samples, instances * share * instance_tokens[identity], epochs, flag)
    return RunDraws(shape, max_epochs, draws)
