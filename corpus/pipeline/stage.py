"""What every stage shares: the plain-Python `Stage` (and `RecordFilter`, a stage that keeps,
changes or drops one record), the one Beam adapter that runs a stage (`StageFn`), counters named
`<stage>.in|out|dropped.<reason>`, the helper that turns a dropped record into a `Reject`, and
what the global stages exchange instead of whole records: a record's `Fingerprint` in, a
`Verdict` on it out.

Stages are plain Python: the per-file chain (file_chain.py), the shard write-out
(write_shards.py) and the vocabulary's corpus reader (tokenization/vocab_corpus.py) call
`stage.outputs(element)` and tell a kept `Record` from a `Reject` by its type. Beam meets them
only through `StageFn`, which sends `Reject`s to the `rejected` output.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas import Record, Reject

KEPT = "kept"
REJECTED = "rejected"
VERDICTS = "verdicts"

Position = tuple[str, int, int]  # (source_path, source_line, piece): `Record.position`


class Fingerprint(NamedTuple):
    """What dedupe needs of a document (its pieces share it); sorts by input position first.
    `position` is the document's: `(source_path, source_line, 0)`, whichever pieces were kept."""

    position: Position
    content_hash: str | None
    minhash: bytes | None

    @classmethod
    def of(cls, record: Record) -> Fingerprint:
        return cls(document_position(record.position), record.content_hash, record.minhash)


def document_position(position: Position) -> Position:
    """The position of the document a piece was cut from: dedupe verdicts are on documents."""
    return (position[0], position[1], 0)


def document_fingerprints(records: Iterable[Record]) -> Iterator[Fingerprint]:
    """One fingerprint per document among `records` (pieces of one document carry the same one)."""
    seen: set[Position] = set()
    for record in records:
        fingerprint = Fingerprint.of(record)
        if fingerprint.position not in seen:
            seen.add(fingerprint.position)
            yield fingerprint


class Verdict(NamedTuple):
    """A global stage's decision on one record: drop it (`reason` set: stage, reason, the kept
    copy's `source_path:source_line`, detail) or, with `reason` None, the size of the
    near-duplicate cluster it keeps."""

    position: Position
    stage: str
    reason: str | None = None
    duplicate_of: str | None = None
    detail: str = ""
    cluster_size: int = 1


def location(position: Position) -> str:
    """`source_path:source_line`, as rejects' `duplicate_of` names a record."""
    return f"{position[0]}:{position[1]}"
METRICS_NAMESPACE = "corpus"


class StageCounters:
    """Beam counters of one stage: `in`, `out` and `dropped.<reason>` (created on first use)."""

    def __init__(self, stage: str):
        self.stage = stage
        self.records_in = Metrics.counter(METRICS_NAMESPACE, f"{stage}.in")
        self.records_out = Metrics.counter(METRICS_NAMESPACE, f"{stage}.out")
        self._dropped: dict[str, object] = {}

    def dropped(self, reason: str, n: int = 1) -> None:
        counter = self._dropped.get(reason)
        if counter is None:
            counter = self._dropped[reason] = Metrics.counter(METRICS_NAMESPACE, f"{self.stage}.dropped.{reason}")
        counter.inc(n)


def reject_record(
    record: Record,
    stage: str,
    reason: str,
    *,
    score: float | None = None,
    threshold: float | None = None,
    duplicate_of: str | None = None,
    detail: str = "",
    max_chars: int = 2000,
) -> Reject:
    """The `Reject` for a record a stage dropped, keeping its position and (truncated) text."""
    return Reject(
        source_path=record.source_path,
        source_line=record.source_line,
        piece=record.piece,
        stage=stage,
        reason=reason,
        score=score,
        threshold=threshold,
        duplicate_of=duplicate_of,
        detail=detail,
        text=record.text[:max_chars],
        raw_chars=record.raw_chars,
    )


STAGE_ERROR = "stage_error"  # reject reason of a record a stage raised on


def stage_error_reject(record: Record, stage: str, error: Exception, max_chars: int = 2000) -> Reject:
    """The `Reject` for a record `stage` raised on: one bad record never fails a build."""
    message = str(error)
    if len(message) > 300:
        message = message[:297] + "..."
    return reject_record(record, stage, STAGE_ERROR, max_chars=max_chars,
                         detail=f"{record.source_path}:{record.source_line}: {type(error).__name__}: {message}")


class Stage:
    """A corpus stage as plain Python: `setup()` once (on the worker that runs it), then
    `outputs(element)` per element: the records it keeps (`Record`) and the `Reject`s of what it
    drops, in order. It counts `<stage>.in`, `.out` and `.dropped.<reason>` as Beam counters (the
    runner collects them when a Beam worker calls the stage; elsewhere they count nothing).
    Subclasses write `process`; callers use `outputs`.
    """

    stage = "stage"
    reject_text_chars = 2000

    def setup(self) -> None:
        self.counters = StageCounters(self.stage)

    def process(self, element: Any) -> Iterable[Record | Reject]:
        raise NotImplementedError

    def outputs(self, element: Any) -> Iterable[Record | Reject]:
        """What `process` gives for `element`. For a record: a list, and a record the stage raises
        on becomes one `stage_error` reject (one bad record never fails a build). Anything else (the
        reader's input file) streams, unguarded: the reader turns its own bad lines into rejects."""
        if not isinstance(element, Record):
            return self.process(element)  # streamed: a file's lines are never held twice
        try:
            return list(self.process(element))
        except Exception as error:  # noqa: BLE001 - any failure on one record is that record's reject
            self.counters.dropped(STAGE_ERROR)
            return [stage_error_reject(element, self.stage, error, self.reject_text_chars)]


class RecordFilter(Stage):
    """A stage that keeps, changes or drops one record at a time: `process_record` answers
    `(record or None, reject or None)`; `process` counts in/out/dropped around it.
    """

    def process_record(self, record: Record) -> tuple[Record | None, Reject | None]:
        raise NotImplementedError

    def process(self, record: Record) -> Iterator[Record | Reject]:
        self.counters.records_in.inc()
        kept, reject = self.process_record(record)
        if reject is not None:
            self.counters.dropped(reject.reason)
            yield reject
        if kept is not None:
            self.counters.records_out.inc()
            yield kept


class StageFn(beam.DoFn):
    """The one Beam adapter of plain stages: `stage.setup()` on the worker, then every output of
    `stage.outputs(element, **side_inputs)`: a `Reject` to the `rejected` output, an instance of
    a type in `side_outputs` to that type's output, anything else to the main output.

    `stage`: a `Stage`, or any object with `setup()` and `outputs(element, **side_inputs)`
    (the per-file chain, the shard write-out).
    """

    def __init__(self, stage: Any, side_outputs: dict[type, str] | None = None):
        self.stage = stage
        self.side_outputs = {Reject: REJECTED, **(side_outputs or {})}

    def setup(self) -> None:
        self.stage.setup()

    def process(self, element, **side_inputs):  # no annotations: Beam would read them as type hints
        side_outputs = self.side_outputs
        for output in self.stage.outputs(element, **side_inputs):
            tag = side_outputs.get(type(output))
            yield output if tag is None else beam.pvalue.TaggedOutput(tag, output)
