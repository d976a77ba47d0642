"""Stage 5, exact dedupe: records with the same `content_hash` (normalised text) collapse to
the one earliest in input order, across every input of the build. The others get an
`exact_duplicate` verdict naming the kept copy in `duplicate_of`.

Only fingerprints travel (position, hashes): the records stay in their input file's
checkpoint until `write_shards.py` applies the verdicts.
"""

from __future__ import annotations

import apache_beam as beam

from corpus.pipeline.stage import KEPT, VERDICTS, Verdict, location

STAGE = "exact_dedupe"


def keep_earliest(element):
    """(hash, fingerprints) -> the earliest fingerprint; a `VERDICTS` output for each other one."""
    _, fingerprints = element
    ordered = sorted(fingerprints)
    kept = ordered[0].position
    yield ordered[0]
    for duplicate in ordered[1:]:
        yield beam.pvalue.TaggedOutput(VERDICTS, Verdict(
            duplicate.position, STAGE, "exact_duplicate", duplicate_of=location(kept),
            detail=f"same normalised text as {location(kept)} (piece {kept[2]})"))


class ExactDedupe(beam.PTransform):
    """PCollection[Fingerprint] -> outputs `kept` (Fingerprint) and `verdicts` (Verdict)."""

    def expand(self, fingerprints):
        return (
            fingerprints
            | "KeyByHash" >> beam.Map(lambda f: (f.content_hash, f))
            | "GroupByHash" >> beam.GroupByKey()
            | "KeepEarliest" >> beam.FlatMap(keep_earliest).with_outputs(VERDICTS, main=KEPT)
        )
