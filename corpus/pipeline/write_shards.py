"""The write-out of a build, stages 5-8a resolved one input file at a time: apply the dedupe
verdicts to the file's checkpointed records, decontaminate the survivors against the evaluation
sets (a side input; decontaminate.py), escape and validate them (stage 7), write the file's
record and reject shards (stage 8a).

The global stages only moved document fingerprints and verdicts on documents; a verdict covers
every piece of its document (pieces share the document's `(source_path, source_line)`). Here each file's records and the
rejects of its per-file stages come back from its checkpoint, so a worker holds one input
file at a time whatever the size of the build. Counters are the ones each stage would have
counted on whole records: `exact_dedupe.*` and `near_dedupe.*` (in, out, dropped), then
`decontamination.*`, then escape's, then `write.arrow` / `write.rejects`.

Shards are sorted by input position and named by the input file, so they are the same
bytes whatever the runner or worker count. Stage 8b (packing the binary dataset) runs after
the job, in pack.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam

from corpus.pipeline import dedupe_exact, dedupe_minhash
from corpus.pipeline.decontaminate import Decontaminator, EvalIndex
from corpus.pipeline.escape import EscapeSpecialTokens
from corpus.pipeline.file_checkpoints import read_checkpoint
from corpus.pipeline.parquet_shards import (
    ARROW_DIR,
    RECORDS_SUFFIX,
    REJECTS_DIR,
    REJECTS_SUFFIX,
    join,
    shard_metadata,
    shard_name,
    write_records,
    write_rejects,
)
from corpus.pipeline.stage import StageCounters, StageFn, Verdict, document_position, reject_record
from schemas import BuildConfig, Record, Reject

STAGE = "write"


class FileWriteOut:
    """One input file's write-out: `outputs((source_path, {"done": [keys], "verdicts": [...]}),
    eval_index)` gives the URLs of the record and reject shards it wrote."""

    def __init__(self, config: BuildConfig, output: str):
        self.config = config
        self.output = output

    def setup(self) -> None:
        near = self.config.near_dedupe.enabled
        self.dedupe = [StageCounters(stage) for stage, enabled in
                       ((dedupe_exact.STAGE, self.config.exact_dedupe.enabled), (dedupe_minhash.STAGE, near)) if enabled]
        self.decontaminate = Decontaminator(self.config.decontamination, self.config.write.reject_text_chars)
        self.escape = EscapeSpecialTokens(self.config.escape, self.config.write, self.config.write.reject_text_chars)
        self.escape.setup()
        self.written = StageCounters(f"{STAGE}.{ARROW_DIR}")
        self.written_rejects = StageCounters(f"{STAGE}.{REJECTS_DIR}")
        self.metadata = shard_metadata(f"{self.config.task_name}.{self.config.dataset_name}", self.config.fingerprint())

    def _resolve(self, record: Record, verdict: Verdict | None) -> tuple[Record | None, Reject | None]:
        """Through the dedupe stages in order: dropped by the stage its verdict names, or kept."""
        for counters in self.dedupe:
            counters.records_in.inc()
            if verdict is not None and verdict.reason is not None and verdict.stage == counters.stage:
                counters.dropped(verdict.reason)
                return None, reject_record(record, verdict.stage, verdict.reason, duplicate_of=verdict.duplicate_of,
                                           detail=verdict.detail, max_chars=self.config.write.reject_text_chars)
            counters.records_out.inc()
        if verdict is not None and verdict.reason is None:
            record = record.model_copy(update={"cluster_size": verdict.cluster_size})
        return record, None

    def outputs(self, element, eval_index: EvalIndex | None = None) -> Iterator[str]:
        source_path, groups = element
        keys = sorted(groups["done"])  # the file's checkpoint, or one per byte range of it
        if not keys:
            raise RuntimeError(f"{source_path}: verdicts for a file that was never prepared")
        verdicts = {verdict.position: verdict for verdict in groups["verdicts"]}
        records, rejects = [], []
        for key in keys:
            key_records, key_rejects = read_checkpoint(self.config.resolved_work_dir, key)
            records += key_records
            rejects += key_rejects
        kept: list[Record] = []
        resolved = [self._resolve(record, verdicts.get(document_position(record.position))) for record in records]
        if eval_index is not None:
            resolved = self.decontaminate.process_resolved(resolved, eval_index)
        for record, reject in resolved:
            if record is not None:
                for output in self.escape.outputs(record):
                    if isinstance(output, Reject):
                        reject = output
                    else:
                        kept.append(output)
            if reject is not None:
                rejects.append(reject)
        name = shard_name(source_path)
        for items, folder, suffix, write, counters in (
            (kept, ARROW_DIR, RECORDS_SUFFIX, write_records, self.written),
            (rejects, REJECTS_DIR, REJECTS_SUFFIX, write_rejects, self.written_rejects),
        ):
            if items:
                url = join(self.output, folder, name + suffix)
                write(url, items, self.metadata)
                counters.records_in.inc(len(items))
                counters.records_out.inc(len(items))
                yield url


class WriteShards(beam.PTransform):
    """(PCollection[PreparedFile] of prepared files or ranges, PCollection[Verdict]) -> the
    written shard URLs under `<output>/arrow/` and `<output>/rejects/`, one pair per input file."""

    def __init__(self, config: BuildConfig, output: str, eval_index=None):
        super().__init__()
        self.config = config
        self.output = output
        self.eval_index = eval_index  # PCollection of one EvalIndex (decontamination's side input), or None

    def expand(self, inputs):
        done, verdicts = inputs
        side = {} if self.eval_index is None else {"eval_index": beam.pvalue.AsSingleton(self.eval_index)}
        return (
            {"done": done,
             "verdicts": verdicts | "ByFile" >> beam.Map(lambda v: (v.position[0], v))}
            | "GroupByFile" >> beam.CoGroupByKey()
            | "WriteFileShards" >> beam.ParDo(StageFn(FileWriteOut(self.config, self.output)), **side)
        )
