"""Stage 5, exact dedupe: records with the same `content_hash` (normalised text) collapse to
the one earliest in input order, across every input of the build. The others are rejected as
`exact_duplicate`, naming the kept copy in `duplicate_of`.
"""

from __future__ import annotations

import apache_beam as beam

from corpus.pipeline.stage import REJECTED, StageCounters, reject_record
from schemas import Record

STAGE = "exact_dedupe"


class KeepEarliestFn(beam.DoFn):
    """(hash, records) -> the earliest record; the rest to `rejected`."""

    def __init__(self, reject_text_chars: int = 2000):
        self.reject_text_chars = reject_text_chars

    def setup(self) -> None:
        self.counters = StageCounters(STAGE)

    def process(self, element):
        _, records = element
        ordered = sorted(records, key=lambda r: r.position)
        kept = ordered[0]
        self.counters.records_in.inc(len(ordered))
        self.counters.records_out.inc()
        yield kept
        for duplicate in ordered[1:]:
            self.counters.dropped("exact_duplicate")
            yield beam.pvalue.TaggedOutput(REJECTED, reject_record(
                duplicate, STAGE, "exact_duplicate", duplicate_of=kept.location,
                detail=f"same normalised text as {kept.location} (piece {kept.piece})",
                max_chars=self.reject_text_chars))


class ExactDedupe(beam.PTransform):
    """PCollection[Record with content_hash] -> outputs `kept` and `rejected`."""

    def __init__(self, reject_text_chars: int = 2000):
        super().__init__()
        self.reject_text_chars = reject_text_chars

    def expand(self, records):
        return (
            records
            | "KeyByHash" >> beam.Map(lambda r: (r.content_hash, r))
            | "GroupByHash" >> beam.GroupByKey()
            | "KeepEarliest" >> beam.ParDo(KeepEarliestFn(self.reject_text_chars)).with_outputs(REJECTED, main="kept")
        )
