"""Stage 8a, write (inside the Beam job): kept records and rejects as Parquet shards, one of
each per input file, sorted by input position, named by the input file — so the shards are
the same bytes whatever the runner or worker count. Stage 8b (packing the binary dataset)
runs after the job, in pack.py.
"""

from __future__ import annotations

import apache_beam as beam

from corpus.pipeline.shards import RECORDS_SUFFIX, REJECTS_SUFFIX, join, shard_name, write_records, write_rejects
from corpus.pipeline.stage import StageCounters

STAGE = "write"
ARROW_DIR = "arrow"
REJECTS_DIR = "rejects"


class _WriteShardFn(beam.DoFn):
    def __init__(self, folder: str, suffix: str, rejects: bool):
        self.folder = folder
        self.suffix = suffix
        self.rejects = rejects

    def setup(self) -> None:
        self.counters = StageCounters(f"{STAGE}.{REJECTS_DIR if self.rejects else ARROW_DIR}")

    def process(self, element):
        source_path, items = element
        items = list(items)
        url = join(self.folder, shard_name(source_path) + self.suffix)
        (write_rejects if self.rejects else write_records)(url, items)
        self.counters.records_in.inc(len(items))
        self.counters.records_out.inc(len(items))
        yield url


class WriteRecordShards(beam.PTransform):
    """PCollection[Record] -> `<output>/arrow/<source>.parquet`; returns the written URLs."""

    def __init__(self, output: str):
        super().__init__()
        self.folder = join(output, ARROW_DIR)

    def expand(self, records):
        return (
            records
            | "ByFile" >> beam.Map(lambda r: (r.source_path, r))
            | "GroupByFile" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(_WriteShardFn(self.folder, RECORDS_SUFFIX, rejects=False))
        )


class WriteRejectShards(beam.PTransform):
    """PCollection[Reject] -> `<output>/rejects/<source>.rejects.parquet`; returns the written URLs."""

    def __init__(self, output: str):
        super().__init__()
        self.folder = join(output, REJECTS_DIR)

    def expand(self, rejects):
        return (
            rejects
            | "ByFile" >> beam.Map(lambda r: (r.source_path, r))
            | "GroupByFile" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(_WriteShardFn(self.folder, REJECTS_SUFFIX, rejects=True))
        )
