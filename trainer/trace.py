"""Provenance to the batch: which samples each training step's rows held, and where they came from.

While training, every rank appends one JSON line per micro-batch to
`<log_dir>/trace/rank<R>.jsonl`: the step, the micro-batch, and per row the instances packed
in it (first token, token count, and for the sample and each in-context sample: dataset,
data file, block, offset: `trainer.stream.BatchStream` takes them from the reader). A resumed
run trains some steps again; their newest lines win.

`bee trace RUN --step N [--row R]` reads those lines back and, per sample, reads the record
from its dataset and, for datasets a corpus build wrote, the input `file:line` it came from
(`corpus.pipeline.provenance`). The tool for "why did the loss spike at step 41,200".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

TRACE_DIR = "trace"


def trace_file(log_dir: str | Path, rank: int) -> Path:
    return Path(log_dir) / TRACE_DIR / f"rank{rank:05d}.jsonl"


class TraceWriter:
    """Appends one rank's batch origins, a line per micro-batch; flushed once per step."""

    def __init__(self, log_dir: str | Path, rank: int) -> None:
        path = trace_file(log_dir, rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(path, "a", encoding="utf-8")

    def write(self, step: int, micro_batch: int, origins: list) -> None:
        self._file.write(json.dumps({"step": step, "micro": micro_batch, "rows": origins}, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class TracedSample:
    """One sample of a step's batch: where it sat (rank, micro-batch, row, tokens) and where it was read."""

    rank: int
    micro_batch: int
    row: int
    first_token: int
    tokens: int  # of its whole instance (the sample and its in-context samples)
    sample: int  # 0: the sample; i: its i-th in-context sample
    dataset: str  # task.dataset
    file_name: str
    block: int
    offset: int


def traced_samples(log_dir: str | Path, step: int, row: int | None = None, rank: int | None = None) -> list[TracedSample]:
    """The samples of `step` (optionally one row, one rank), in rank, micro-batch, row order.

    Raises FileNotFoundError when the run recorded no trace, KeyError when it has no such step.
    """
    folder = Path(log_dir) / TRACE_DIR
    files = sorted(folder.glob("rank*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{folder}: no trace files (was the run trained with trace: false?)")
    found: list[TracedSample] = []
    for path in files:
        this_rank = int(path.stem[len("rank"):])
        if rank is not None and this_rank != rank:
            continue
        for micro, rows in sorted(_step_lines(path, step).items()):
            for r, instances in enumerate(rows):
                if row is not None and r != row:
                    continue
                for first, tokens, origins in instances:
                    for i, (dataset, file_name, block, offset) in enumerate(origins):
                        found.append(TracedSample(this_rank, micro, r, first, tokens, i, dataset, file_name, block, offset))
    if not found:
        raise KeyError(f"{folder}: no trace of step {step}" + (f" row {row}" if row is not None else ""))
    return found


def _step_lines(path: Path, step: int) -> dict[int, list]:
    """micro-batch -> rows of `step` in one rank's file; the newest line of each wins."""
    found: dict[int, list] = {}
    needle = f'"step":{step},'
    with open(path, encoding="utf-8") as f:
        for line in f:
            if needle in line:  # cheap pre-filter before parsing
                record = json.loads(line)
                if record["step"] == step:
                    found[record["micro"]] = record["rows"]
    return found


@dataclass(frozen=True)
class ResolvedSample:
    """A traced sample with its record (index in the dataset, value) and input line."""

    traced: TracedSample
    dataset_path: Path | None
    index: int | None
    value: Any
    source: str


def resolve_samples(samples: list[TracedSample], manifest_path: str | Path) -> Iterator[ResolvedSample]:
    """Read each sample's record from the datasets of `manifest_path` and find its input line."""
    from corpus.dataset.locate import locate_record
    from corpus.manifest.lines import resolve_dataset_path
    from corpus.manifest.store import read_manifest
    from corpus.pipeline.provenance import record_source

    manifest = Path(manifest_path)
    paths = {entry.identity: resolve_dataset_path(entry.path, manifest.parent) for entry in read_manifest(manifest)}
    for sample in samples:
        path = paths.get(sample.dataset)
        if path is None:
            yield ResolvedSample(sample, None, None, None, f"unknown (no dataset {sample.dataset} in {manifest} now)")
            continue
        try:
            located = locate_record(path, sample.file_name, sample.block, sample.offset)
        except (KeyError, OSError, ValueError) as error:
            yield ResolvedSample(sample, path, None, None, f"unknown ({error})")
            continue
        yield ResolvedSample(sample, path, located.index, located.value, str(record_source(path, located.index, located.value)))
