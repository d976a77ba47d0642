"""The corpus build as one Beam pipeline, top to bottom as in DESIGN.md:

    input files ─ read → clean → split → quality → fingerprint ─┬─ (checkpoint per file)
    checkpointed files ─────────────────────────────────────────┘
      → exact dedupe → near dedupe (MinHash LSH) → escape/validate → Parquet shards
      every stage's rejects ────────────────────────────────────→ rejects shards
"""

from __future__ import annotations

import apache_beam as beam

from corpus.pipeline.checkpoint import ReadFileCheckpoints
from corpus.pipeline.clean import CleanTextFn
from corpus.pipeline.dedupe_exact import ExactDedupe
from corpus.pipeline.dedupe_minhash import MinHashDedupe
from corpus.pipeline.escape import EscapeSpecialTokens
from corpus.pipeline.fingerprint import ComputeFingerprintsFn
from corpus.pipeline.prepare import PrepareInputFiles
from corpus.pipeline.quality import QualityFilterFn
from corpus.pipeline.read import InputFile, ReadFileLines
from corpus.pipeline.split import SplitLongDocumentsFn
from corpus.pipeline.write import WriteRecordShards, WriteRejectShards
from schemas import BuildConfig


def per_file_stages(config: BuildConfig) -> list[beam.DoFn]:
    """Stages 1-4 and the fingerprints, in order; each is the DoFn of its own stage module."""
    keep = config.write.reject_text_chars
    return [
        ReadFileLines(config.read, keep),
        CleanTextFn(config.clean),
        SplitLongDocumentsFn(config.split, keep),
        QualityFilterFn(config.quality, keep),
        ComputeFingerprintsFn(config.exact_dedupe, config.near_dedupe),
    ]


def build_pipeline(
    pipeline: beam.Pipeline,
    config: BuildConfig,
    todo: list[InputFile],
    finished: list[str],
    staging: str,
) -> None:
    """Add the whole build to `pipeline`: read `todo` files, resume `finished` ones (source
    paths with a valid checkpoint), write shards under `staging`.
    """
    work_dir = config.resolved_work_dir
    keep = config.write.reject_text_chars
    fresh = (
        pipeline
        | "InputFiles" >> beam.Create(todo)
        | "Prepare" >> PrepareInputFiles(per_file_stages(config), work_dir, config.prepare_fingerprint())
    )
    resumed = pipeline | "FinishedFiles" >> beam.Create(finished) | "Resume" >> ReadFileCheckpoints(work_dir)
    records = (fresh.kept, resumed.kept) | "AllRecords" >> beam.Flatten()
    rejects = [fresh.rejected, resumed.rejected]

    if config.exact_dedupe.enabled:
        exact = records | "ExactDedupe" >> ExactDedupe(keep)
        records = exact.kept
        rejects.append(exact.rejected)
    if config.near_dedupe.enabled:
        near = records | "NearDedupe" >> MinHashDedupe(config.near_dedupe, keep)
        records = near.kept
        rejects.append(near.rejected)
    escaped = records | "Escape" >> EscapeSpecialTokens(config.escape, config.write, keep)
    rejects.append(escaped.rejected)

    escaped.kept | "WriteRecords" >> WriteRecordShards(staging)
    tuple(rejects) | "AllRejects" >> beam.Flatten() | "WriteRejects" >> WriteRejectShards(staging)
