"""Completion markers for the per-file stages (read .. fingerprint): each finished input file,
or byte range of a big file (ranges.py), leaves its records, its rejects and a marker in
`<work_dir>/prepared/`, named by `InputFile.key`. A relaunched build skips every file or range
whose marker matches it (name, size, mtime, content digest, byte range) and the per-file
settings and whose shards are readable with the row counts the marker records, and feeds the
saved records' fingerprints into the global stages instead of reading it again. Every build's
last stage (write_shards.py) reads the records and rejects of all of a file's ranges from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from corpus.pipeline.parquet_shards import (
    MARKER_SUFFIX,
    RECORDS_SUFFIX,
    REJECTS_SUFFIX,
    join,
    read_marker,
    read_records,
    read_rejects,
    shard_name,
    write_marker,
    write_records,
    write_rejects,
)
from corpus.pipeline.read import InputFile
from corpus.pipeline.stage import Fingerprint, StageFn, document_fingerprints

PREPARED = "prepared"
DONE = "done"  # output tag of the `PreparedFile`s: files or ranges whose checkpoint is written


class PreparedFile(NamedTuple):
    """An input file (or byte range) whose checkpoint is written: `key` names the checkpoint
    (`InputFile.key`); the write-out groups them by `source_path`."""

    source_path: str
    key: str


def prepared_url(work_dir: str, key: str, suffix: str) -> str:
    """Where the checkpoint of the file or range `key` (`InputFile.key`) keeps `suffix`."""
    return join(work_dir, PREPARED, shard_name(key) + suffix)


def marker_matches(marker: dict | None, file: InputFile, prepare_hash: str) -> bool:
    return bool(marker) and marker.get("file") == file.fingerprint and marker.get("prepare_hash") == prepare_hash


def checkpoint_problem(work_dir: str, key: str, marker: dict) -> str | None:
    """What is wrong with a marked checkpoint's shards (missing, not Parquet, another row count), or None."""
    for suffix, count in ((RECORDS_SUFFIX, "records"), (REJECTS_SUFFIX, "rejects")):
        url = prepared_url(work_dir, key, suffix)
        try:
            with FileSystems.open(url) as stream:
                rows = pq.read_metadata(stream).num_rows
        except Exception as error:  # noqa: BLE001 - any unreadable shard means: redo the file
            return f"{url}: {type(error).__name__}: {error}"
        if rows != marker.get(count):
            return f"{url}: {rows} rows, its completion marker says {marker.get(count)}"
    return None


def finished_files(work_dir: str, files: list[InputFile], prepare_hash: str, log=print) -> list[InputFile]:
    """The files (or ranges) whose checkpoint is complete and still valid; a corrupt one is named in `log` and redone."""
    finished = []
    for file in files:
        marker = read_marker(prepared_url(work_dir, file.key, MARKER_SUFFIX))
        if not marker_matches(marker, file, prepare_hash):
            continue
        problem = checkpoint_problem(work_dir, file.key, marker)
        if problem is None:
            finished.append(file)
        else:
            log(f"{file.key}: checkpoint is corrupt ({problem}); reading it again")
    return finished


def write_file_checkpoint(work_dir: str, file: InputFile, prepare_hash: str,
                          records: list, rejects: list, units: int) -> None:
    """Save one finished input file or range: its records, its rejects, then the marker that vouches for both."""
    write_records(prepared_url(work_dir, file.key, RECORDS_SUFFIX), records)
    write_rejects(prepared_url(work_dir, file.key, REJECTS_SUFFIX), rejects)
    # The marker goes last: its presence means both shards above are complete.
    write_marker(prepared_url(work_dir, file.key, MARKER_SUFFIX), {
        "file": file.fingerprint, "prepare_hash": prepare_hash,
        "units": units, "records": len(records), "rejects": len(rejects),
    })


def read_file_units(work_dir: str, key: str) -> int:
    """How many lines (and file-level problems) the reader counted for a checkpointed file or range."""
    marker = read_marker(prepared_url(work_dir, key, MARKER_SUFFIX))
    if marker is None:
        raise FileNotFoundError(f"{key}: no completion marker in {join(work_dir, PREPARED)}")
    return int(marker["units"])


def read_checkpoint(work_dir: str, key: str) -> tuple[list, list]:
    """(records, rejects) a finished input file or range left in its checkpoint."""
    records = list(read_records(prepared_url(work_dir, key, RECORDS_SUFFIX)))
    return records, list(read_rejects(prepared_url(work_dir, key, REJECTS_SUFFIX)))


class ResumeFile:
    """A finished file or range, from its checkpoint: one `Fingerprint` per document it kept,
    then its `PreparedFile` (the same outputs as when it was first read, file_chain.py)."""

    def __init__(self, work_dir: str):
        self.work_dir = work_dir

    def setup(self) -> None:
        pass

    def outputs(self, file: InputFile) -> Iterator[Fingerprint | PreparedFile]:
        yield from document_fingerprints(read_records(prepared_url(self.work_dir, file.key, RECORDS_SUFFIX)))
        yield PreparedFile(file.source_path, file.key)


class ReadFileCheckpoints(beam.PTransform):
    """PCollection[InputFile] of finished files or ranges -> outputs `fingerprints` (Fingerprint)
    and `done` (PreparedFile)."""

    def __init__(self, work_dir: str):
        super().__init__()
        self.work_dir = work_dir

    def expand(self, files):
        return (
            files
            | "Spread" >> beam.Reshuffle()
            | "ReadCheckpoint" >> beam.ParDo(StageFn(ResumeFile(self.work_dir), {PreparedFile: DONE})).with_outputs(
                DONE, main="fingerprints")
        )
