"""The corpus build as one Beam pipeline, top to bottom as in DESIGN.md:

    input files ─ read → clean → language → pii → quality → fingerprint → split ─┬─ (checkpoint per file)
    checkpointed files ─────────────────────────────────────────┘
      document fingerprints → exact dedupe → near dedupe (MinHash LSH) → verdicts ─┐
      per input file: checkpointed records and rejects + its verdicts ────┴→ decontaminate → escape/validate
        → Parquet record and reject shards

Records stay in their file's checkpoint between the per-file stages and the last one; the
global stages move only fingerprints (position, hash, signature) and verdicts on them.
"""

from __future__ import annotations

import apache_beam as beam

from corpus.pipeline.clean import CleanText
from corpus.pipeline.decontaminate import build_index
from corpus.pipeline.dedupe_exact import ExactDedupe
from corpus.pipeline.dedupe_minhash import MinHashDedupe
from corpus.pipeline.file_chain import RunFileChain
from corpus.pipeline.file_checkpoints import DONE, ReadFileCheckpoints
from corpus.pipeline.fingerprint import ComputeFingerprints
from corpus.pipeline.language import IdentifyLanguage
from corpus.pipeline.pii import RedactPii
from corpus.pipeline.quality import QualityFilter
from corpus.pipeline.read import InputFile, ReadFileLines
from corpus.pipeline.split import SplitLongDocuments
from corpus.pipeline.stage import Stage
from corpus.pipeline.write_shards import WriteShards
from schemas import BuildConfig


def per_file_stages(config: BuildConfig) -> list[Stage]:
    """The per-file stages, in order; each is the plain-Python stage of its own module. Documents are
    judged and fingerprinted whole, as datatrove and FineWeb do, and split last: a document and
    its copy match however they are cut, and its pieces share one dedupe verdict."""
    keep = config.write.reject_text_chars
    return [
        ReadFileLines(config.read, keep, config.keeps_records_without_ans),
        CleanText(config.clean, keep),
        IdentifyLanguage(config.language, keep),
        RedactPii(config.pii, keep),
        QualityFilter(config.quality, keep),
        ComputeFingerprints(config.exact_dedupe, config.near_dedupe, config.read.metadata_fields),
        SplitLongDocuments(config.split, keep),
    ]


def build_pipeline(
    pipeline: beam.Pipeline,
    config: BuildConfig,
    todo: list[InputFile],
    finished: list[InputFile],
    staging: str,
) -> None:
    """Add the whole build to `pipeline`: read `todo` files (or byte ranges of files), resume
    `finished` ones (those with a valid checkpoint), write shards under `staging`.
    """
    work_dir = config.resolved_work_dir
    fresh = (
        pipeline
        | "InputFiles" >> beam.Create(todo)
        | "PerFileStages" >> RunFileChain(per_file_stages(config), work_dir, config.prepare_fingerprint())
    )
    resumed = pipeline | "FinishedFiles" >> beam.Create(finished) | "Resume" >> ReadFileCheckpoints(work_dir)
    fingerprints = (fresh.fingerprints, resumed.fingerprints) | "AllFingerprints" >> beam.Flatten()
    done = (fresh[DONE], resumed[DONE]) | "AllFiles" >> beam.Flatten()
    verdicts = [pipeline | "NoVerdicts" >> beam.Create([])]

    if config.exact_dedupe.enabled:
        exact = fingerprints | "ExactDedupe" >> ExactDedupe()
        fingerprints = exact.kept
        verdicts.append(exact.verdicts)
    if config.near_dedupe.enabled:
        verdicts.append(fingerprints | "NearDedupe" >> MinHashDedupe(config.near_dedupe))
    all_verdicts = tuple(verdicts) | "AllVerdicts" >> beam.Flatten()
    eval_index = None
    if config.decontamination.eval_sets:
        eval_index = (pipeline | "EvalSets" >> beam.Create([config.decontamination])
                      | "EvalNgrams" >> beam.Map(build_index))
    (done, all_verdicts) | "WriteShards" >> WriteShards(config, staging, eval_index)
