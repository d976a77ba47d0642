"""The per-file chain of a build (read, clean, language, pii, quality, fingerprint, split), run over
one input file at a time and checkpointed per file.

Documents are filtered and fingerprinted whole, then split: every piece carries its
document's fingerprint and position, and only one `Fingerprint` per document (the document's
position, `(source_path, source_line, 0)`) goes on to dedupe, so one verdict covers all pieces.

Each stage is plain Python with its own counters (stage.py); `run_stages` pushes one file's
lines through them one after another inside a single worker call, so that the moment a file is
done its checkpoint is written (see file_checkpoints.py) — a build interrupted midway loses at
most the files in flight, not everything read so far. The records and rejects stay in the
checkpoint: only each record's `Fingerprint` goes on to the global stages, and the file's
`PreparedFile` once it is done (write_shards.py reads the checkpoint back, one file at a time).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import apache_beam as beam

from corpus.pipeline.file_checkpoints import DONE, PreparedFile, write_file_checkpoint
from corpus.pipeline.read import InputFile
from corpus.pipeline.stage import Fingerprint, Stage, StageFn, document_fingerprints
from schemas import Record, Reject


@dataclass
class StageOutputs:
    """What a chain of stages gave: the records the last stage kept, every stage's rejects in
    the order they came, and `units`: how many outputs the first stage gave (for the reader,
    one per line of the file, plus one for a file cut short or empty)."""

    records: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    units: int = 0


def run_stages(stages: Sequence[Stage], elements: Iterable) -> StageOutputs:
    """Push each of `elements` through `stages` in order (each stage's `setup()` already done);
    a record goes on to the next stage as soon as it is made, so a file's lines are never all
    held before the last stage."""
    out = StageOutputs()
    first, rest = stages[0], list(stages[1:])
    for element in elements:
        for output in first.outputs(element):
            out.units += 1
            _push(rest, output, out)
    return out


def _push(stages: list[Stage], item: Record | Reject, out: StageOutputs) -> None:
    if isinstance(item, Reject):
        out.rejects.append(item)
    elif not stages:
        out.records.append(item)
    else:
        for output in stages[0].outputs(item):
            _push(stages[1:], output, out)


class FileChain:
    """One input file (or byte range) through the per-file stages, checkpointed: its
    outputs are one `Fingerprint` per document kept, then the file's `PreparedFile`."""

    def __init__(self, stages: list[Stage], work_dir: str, prepare_hash: str):
        self.stages = stages
        self.work_dir = work_dir
        self.prepare_hash = prepare_hash

    def setup(self) -> None:
        for stage in self.stages:
            stage.setup()

    def outputs(self, file: InputFile) -> Iterator[Fingerprint | PreparedFile]:
        out = run_stages(self.stages, [file])
        write_file_checkpoint(self.work_dir, file, self.prepare_hash, out.records, out.rejects, out.units)
        yield from document_fingerprints(out.records)
        yield PreparedFile(file.source_path, file.key)


class RunFileChain(beam.PTransform):
    """PCollection[InputFile] -> outputs `fingerprints` (Fingerprint) and `done` (PreparedFile).

    `stages`: the per-file stages in order (pipeline.per_file_stages); the first takes an
    `InputFile` (the reader).
    """

    def __init__(self, stages: list[Stage], work_dir: str, prepare_hash: str):
        super().__init__()
        self.chain = FileChain(stages, work_dir, prepare_hash)

    def expand(self, files):
        return (
            files
            | "SpreadFiles" >> beam.Reshuffle()
            | "RunFileChain" >> beam.ParDo(StageFn(self.chain, {PreparedFile: DONE})).with_outputs(
                DONE, main="fingerprints")
        )
