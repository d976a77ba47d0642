"""Questions about a finished build, answered from its Parquet shards with polars lazy scans
(streaming: memory stays bounded whatever the corpus size): what was rejected, why, with
examples (`bee corpus rejects`), and how lengths and quality scores are distributed
(`bee corpus stats`).

A remote output (`s3://`, `gs://`, Azure) is scanned by polars' own object-store reader: the
shards are listed through Beam's filesystems, then read in ranges (footer, then the columns a
query needs) by the streaming engine, never downloaded whole. polars takes the endpoint and
credentials from the same Beam flags a build takes (`--s3_endpoint_url`, ...; see
`remote_output.polars_storage_options`), else from the environment. polars cannot read
`hdfs://`: such an output is refused with a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from corpus.pipeline import remote_output
from corpus.pipeline.output_folder import BUILD_STAMP
from corpus.pipeline.parquet_shards import ARROW_DIR, RECORDS_SUFFIX, REJECTS_DIR, REJECTS_SUFFIX

QUANTILES = (0.1, 0.5, 0.9, 0.99)


class NoShards(FileNotFoundError):
    """The folder is not a build output (no shards where a build writes them)."""


def _shard_files(output: Path | str, folder: str, suffix: str) -> list[str]:
    if remote_output.is_remote(output):
        if not remote_output.is_complete(output):  # object stores publish by the stamp, written last
            raise NoShards(f"{output}: no complete build here (its {BUILD_STAMP} is missing or says a publish is under "
                           "way); is this the output of `bee corpus build`?")
        prefix = remote_output.join(output, folder) + "/"
        files = [name for name in remote_output.list_objects(prefix) if name.endswith(suffix)
                 and "/" not in name[len(prefix):]]  # as the local iterdir: no subfolders
    else:
        output = Path(output)
        if not (output / folder).is_dir():
            raise NoShards(f"{output}: no {folder}/ folder; is this the output folder of `bee corpus build`?")
        files = sorted(str(p) for p in (output / folder).iterdir() if p.name.endswith(suffix))
    if suffix == RECORDS_SUFFIX:
        files = [f for f in files if not f.endswith(REJECTS_SUFFIX)]
    return files


def _scan(files: list[str], output: Path | str, pipeline_args: list[str] | None) -> pl.LazyFrame:
    if remote_output.is_remote(output):
        return pl.scan_parquet(files, storage_options=remote_output.polars_storage_options(str(output), pipeline_args))
    return pl.scan_parquet(files)


def _open_remote(output: Path | str, pipeline_args: list[str] | None) -> None:
    """Refuse a scheme polars cannot read before listing, and point Beam's filesystems (the
    listing) at the flags' endpoint and credentials."""
    if remote_output.is_remote(output):
        remote_output.polars_storage_options(str(output), pipeline_args)  # raises for hdfs://
        remote_output.use_filesystem_options(pipeline_args)


def _collect(frame: pl.LazyFrame) -> pl.DataFrame:
    return frame.collect(engine="streaming")


@dataclass
class RejectSummary:
    counts: pl.DataFrame  # stage, reason, records (most first)
    examples: pl.DataFrame  # stage, reason, where, detail, text: up to `sample` per stage/reason
    total: int


def rejects_summary(output: Path | str, stage: str | None = None, reason: str | None = None, sample: int = 3,
                    text_chars: int = 200, pipeline_args: list[str] | None = None) -> RejectSummary:
    """Rejects of the build in `output` (a folder or a remote URL; `pipeline_args`: Beam's
    filesystem flags for it), optionally of one `stage` and/or `reason`: counts by
    stage/reason and the first `sample` rejects (input order) of each. Raises NoShards,
    UnsafeOutput (a remote scheme polars cannot read)."""
    _open_remote(output, pipeline_args)
    files = _shard_files(output, REJECTS_DIR, REJECTS_SUFFIX)
    if not files:
        empty = pl.DataFrame(schema={"stage": pl.String, "reason": pl.String, "records": pl.UInt32})
        return RejectSummary(empty, pl.DataFrame(), 0)
    rejects = _scan(files, output, pipeline_args)
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


def shard_stats(output: Path | str, pipeline_args: list[str] | None = None) -> ShardStats:
    """Length and quality-score distributions over the kept records of the build in `output`
    (a folder or a remote URL; `pipeline_args`: Beam's filesystem flags for it). Raises
    NoShards, UnsafeOutput (a remote scheme polars cannot read)."""
    _open_remote(output, pipeline_args)
    files = _shard_files(output, ARROW_DIR, RECORDS_SUFFIX)
    if not files:
        raise NoShards(f"{output}/{ARROW_DIR}: no shards (the build kept no record)")
    records = _scan(files, output, pipeline_args)
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
