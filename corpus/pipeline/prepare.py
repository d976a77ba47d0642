"""The per-file part of a build (read, clean, quality, fingerprint, split), checkpointed per input file.

Documents are filtered and fingerprinted whole, then split: every piece carries its
document's fingerprint and position, and only one `Fingerprint` per document (the document's
position, `(source_path, source_line, 0)`) goes on to dedupe, so one verdict covers all pieces.

Each stage stays its own DoFn with its own counters; `PrepareInputFiles` runs them one after
another over one input file inside a single worker call, so that the moment a file is done
its checkpoint is written (see checkpoint.py) — a build interrupted midway loses at most the
files in flight, not everything read so far. The records and rejects stay in the checkpoint:
only each record's `Fingerprint` goes on to the global stages, and the file's name once it is
done (`finish.py` reads the checkpoint back, one file at a time).
"""

from __future__ import annotations

import apache_beam as beam

from corpus.pipeline.checkpoint import DONE, write_file_checkpoint
from corpus.pipeline.read import FILES, InputFile
from corpus.pipeline.stage import REJECTED, STAGE_ERROR, document_fingerprints, stage_error_reject
from schemas import Record


def _stage_outputs(stage: beam.DoFn, element):
    """All outputs of `stage` on one element; a record the stage raises on becomes a `stage_error` reject
    (the reader keeps its own per-line rejects: its element is a whole file)."""
    if not isinstance(element, Record):
        return stage.process(element)  # streamed: a file's lines are never held twice
    try:
        return list(stage.process(element))
    except Exception as error:  # noqa: BLE001 - one bad record never fails a build
        name = getattr(stage, "stage", type(stage).__name__)
        counters = getattr(stage, "counters", None)
        if counters is not None:
            counters.dropped(STAGE_ERROR)
        return [beam.pvalue.TaggedOutput(REJECTED, stage_error_reject(
            element, name, error, getattr(stage, "reject_text_chars", 2000)))]


def _run_chain(stages: list[beam.DoFn], element, records: list, rejects: list, units: list) -> None:
    """Push `element` through `stages`; main outputs go on, rejects and file counts are collected."""
    if not stages:
        records.append(element)
        return
    for output in _stage_outputs(stages[0], element):
        if isinstance(output, beam.pvalue.TaggedOutput):
            if output.tag == REJECTED:
                rejects.append(output.value)
            elif output.tag == FILES:
                units.append(output.value[1])
            else:
                raise ValueError(f"unexpected output tag {output.tag!r} from {type(stages[0]).__name__}")
        else:
            _run_chain(stages[1:], output, records, rejects, units)


class _PrepareFileFn(beam.DoFn):
    def __init__(self, stages: list[beam.DoFn], work_dir: str, prepare_hash: str):
        self.stages = stages
        self.work_dir = work_dir
        self.prepare_hash = prepare_hash

    def setup(self) -> None:
        for stage in self.stages:
            stage.setup()

    def process(self, file: InputFile):
        records: list = []
        rejects: list = []
        units: list[int] = []
        _run_chain(self.stages, file, records, rejects, units)
        write_file_checkpoint(self.work_dir, file, self.prepare_hash, records, rejects, sum(units))
        yield from document_fingerprints(records)
        yield beam.pvalue.TaggedOutput(DONE, (file.source_path, file.key))


class PrepareInputFiles(beam.PTransform):
    """PCollection[InputFile] -> outputs `fingerprints` (Fingerprint) and `done` ((source_path, key)).

    `stages` are DoFns taking one element and yielding records or `rejected` outputs; the
    first takes an `InputFile` (the reader).
    """

    def __init__(self, stages: list[beam.DoFn], work_dir: str, prepare_hash: str):
        super().__init__()
        self.stages = stages
        self.work_dir = work_dir
        self.prepare_hash = prepare_hash

    def expand(self, files):
        return (
            files
            | "SpreadFiles" >> beam.Reshuffle()
            | "PrepareFile" >> beam.ParDo(_PrepareFileFn(self.stages, self.work_dir, self.prepare_hash)).with_outputs(
                DONE, main="fingerprints")
        )
