"""Questions about a finished build, answered from its Parquet shards with polars lazy scans
(streaming: memory stays bounded whatever the corpus size): what was rejected, why, with
examples (`bee corpus rejects`), and how lengths and quality scores are distributed
(`bee corpus stats`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from corpus.pipeline.parquet_shards import ARROW_DIR, RECORDS_SUFFIX, REJECTS_DIR, REJECTS_SUFFIX

QUANTILES = (0.1, 0.5, 0.9, 0.99)


class NoShards(FileNotFoundError):
    """The folder is not a build output (no shards where a build writes them)."""


def _shard_files(output: Path, folder: str, suffix: str) -> list[str]:
    if not (output / folder).is_dir():
        raise NoShards(f"{output}: no {folder}/ folder; is this the output folder of `bee corpus build`?")
    files = sorted(str(p) for p in (output / folder).iterdir() if p.name.endswith(suffix))
    if suffix == RECORDS_SUFFIX:
        files = [f for f in files if not f.endswith(REJECTS_SUFFIX)]
    return files


def _collect(frame: pl.LazyFrame) -> pl.DataFrame:
    return frame.collect(engine="streaming")


@dataclass
class RejectSummary:
    counts: pl.DataFrame  # stage, reason, records (most first)
    examples: pl.DataFrame  # stage, reason, where, detail, text: up to `sample` per stage/reason
    total: int


def rejects_summary(output: Path, stage: str | None = None, reason: str | None = None, sample: int = 3,
                    text_chars: int = 200) -> RejectSummary:
    """Rejects of the build in `output`, optionally of one `stage` and/or `reason`: counts by
    stage/reason and the first `sample` rejects (input order) of each. Raises NoShards."""
    files = _shard_files(output, REJECTS_DIR, REJECTS_SUFFIX)
    if not files:
        empty = pl.DataFrame(schema={"stage": pl.String, "reason": pl.String, "records": pl.UInt32})
        return RejectSummary(empty, pl.DataFrame(), 0)
    rejects = pl.scan_parquet(files)
    if stage:
        rejects = rejects.filter(pl.col("stage") == stage)
    if reason:
        rejects = rejects.filter(pl.col("reason") == reason)
    counts = _collect(rejects.group_by("stage", "reason").agg(pl.len().alias("records"))
                      .sort(["records", "stage", "reason"], descending=[True, False, False]))
    examples = _collect(
        rejects.sort("source_path", "source_line", "piece")
        .group_by("stage", "reason", maintain_order=True).head(sample)
        .select("stage", "reason",
                pl.format("{}:{}", "source_path", "source_line").alias("where"),
                "detail", pl.col("text").str.slice(0, text_chars).alias("text"))
    ) if sample > 0 else pl.DataFrame()
    return RejectSummary(counts, examples, int(counts["records"].sum()))


@dataclass
class ShardStats:
    records: int
    by_kind: pl.DataFrame  # kind, records, characters
    lengths: pl.DataFrame  # measure (chars / raw_chars), min, p10, p50, p90, p99, max, mean
    scores: pl.DataFrame  # quality measure, records, min, p10, p50, p90, p99, max


def _distribution(column: pl.Expr) -> list[pl.Expr]:
    return [column.min().alias("min"), *(column.quantile(q, "nearest").alias(f"p{round(q * 100)}") for q in QUANTILES),
            column.max().alias("max"), column.mean().alias("mean")]


def shard_stats(output: Path) -> ShardStats:
    """Length and quality-score distributions over the kept records of the build in `output`.
    Raises NoShards."""
    files = _shard_files(output, ARROW_DIR, RECORDS_SUFFIX)
    if not files:
        raise NoShards(f"{output}/{ARROW_DIR}: no shards (the build kept no record)")
    records = pl.scan_parquet(files)
    by_kind = _collect(records.group_by("kind").agg(pl.len().alias("records"), pl.col("chars").sum().alias("characters"))
                       .sort("kind"))
    lengths = pl.concat([
        _collect(records.select(pl.lit(label).alias("measure"), *_distribution(pl.col(column))))
        for label, column in (("characters written", "chars"), ("characters as read", "raw_chars"))
    ])
    scores = _collect(
        records.select(pl.col("quality").map.entries().alias("entry")).explode("entry").unnest("entry")
        .drop_nulls("key").group_by("key")
        .agg(pl.len().alias("records"), *_distribution(pl.col("value"))[:-1])
        .rename({"key": "quality measure"}).sort("quality measure")
    )
    return ShardStats(int(by_kind["records"].sum()), by_kind, lengths, scores)
