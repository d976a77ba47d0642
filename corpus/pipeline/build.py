"""`build_corpus`: the one function behind `bee corpus build` and the corpus-build flow.

Check the output may be written (output_folder.py) and lock it → list inputs and digest their
bytes → skip if the same build already finished → run the Beam pipeline into a staging folder
(resuming checkpointed input files) → pack the binary dataset → check
`records in = written + rejected` → write the report → swap the staging folder into place →
upsert the manifest entry.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from corpus.dataset.lock import folder_lock
from corpus.manifest import upsert_entry
from corpus.pipeline.checkpoint import finished_files, read_file_units
from corpus.pipeline.components import UNCONVERGED_COUNTER
from corpus.pipeline.faults import kill_at
from corpus.pipeline.input_digest import with_digests
from corpus.pipeline.local_runner import local_instead_of_direct
from corpus.pipeline.output_folder import (
    OutputLocked,
    check_output_location,
    is_complete,
    new_staging,
    output_lock,
    read_stamp,
    recover_swap,
    swap_into_place,
    write_stamp,
)
from corpus.pipeline.pack import content_fingerprint, pack_dataset
from corpus.pipeline.pipeline import build_pipeline
from corpus.pipeline.read import list_input_files
from corpus.pipeline.report import StatsCollector, write_report
from corpus.pipeline.runners import RunnerFailed, refuse_unsupported_runner, run_pipeline
from corpus.pipeline.stage import METRICS_NAMESPACE
from schemas import BuildConfig, DatasetEntry
from schemas.manifest import Fingerprints, Provenance

WORKER_MEMORY_PLUGIN = "corpus.pipeline.worker_memory"  # imported by each worker at start-up (never here)


class BuildError(RuntimeError):
    """A build that ran but cannot be trusted (records lost, clustering not converged)."""


@dataclass(frozen=True)
class BuildResult:
    """What a build produced (or found already built)."""

    output: Path
    dataset_path: Path
    manifest_path: Path
    up_to_date: bool
    units_in: int
    extra_pieces: int
    written: int
    rejected: int
    nlines: int
    nbytes: int
    resumed_files: int
    seconds: float

    def balance_line(self) -> str:
        return (f"records in {self.units_in} + split pieces {self.extra_pieces} == "
                f"written {self.written} + rejected {self.rejected}")


def _tool_version() -> str:
    try:
        return metadata.version("bee-toolchain")
    except metadata.PackageNotFoundError:
        return "unknown"


def pipeline_options(pipeline_args: list[str] | None) -> PipelineOptions:
    """Beam options from the leftover command-line flags. Without `--runner`, or with the
    DirectRunner, the build runs on `LocalRunner` (the DirectRunner's FnApiRunner, never Prism).
    Workers of every runner load the `worker_memory` plugin."""
    options = local_instead_of_direct(PipelineOptions(list(pipeline_args or [])))
    setup = options.view_as(SetupOptions)
    if WORKER_MEMORY_PLUGIN not in (setup.beam_plugins or []):
        setup.beam_plugins = [*(setup.beam_plugins or []), WORKER_MEMORY_PLUGIN]
    return options


def _counters(result) -> dict[str, int]:
    found: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        found[counter.key.metric.name] = found.get(counter.key.metric.name, 0) + int(value or 0)
    return dict(sorted(found.items()))


def _manifest_path(config: BuildConfig) -> Path:
    return Path(config.manifest) if config.manifest else Path(config.output).parent / "datasets.json"


def _upsert_locked(manifest_path: Path, entry: DatasetEntry) -> None:
    """Upsert under the manifest's lock: builds of other outputs may share the manifest."""
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(manifest_path.parent, f".{manifest_path.name}.lock"):
        upsert_entry(manifest_path, entry)


def build_corpus(config: BuildConfig, pipeline_args: list[str] | None = None, config_path: str | None = None,
                 log=print) -> BuildResult:
    """Build the dataset `config` describes.

    Takes the build config, Beam pipeline flags (`--runner`, `--direct_num_workers`, Flink /
    Spark / Dataflow options; passed through unchanged) and the config file's path for the
    provenance. Returns a `BuildResult`. Raises FileNotFoundError / ValueError for bad inputs,
    UnsafeOutput (a ValueError) for an output it may not write or replace, BuildError when the
    output would not be trustworthy, another build holds the output or the runner failed
    (nothing is replaced then).
    """
    check_output_location(config.output, list(config.input), config.resolved_work_dir, str(_manifest_path(config)))
    output = Path(config.output)
    try:
        with output_lock(output):
            recover_swap(output, log)
            return _build_locked(config, output, pipeline_args, config_path, log)
    except (OutputLocked, RunnerFailed) as error:
        raise BuildError(str(error)) from None


def _build_locked(config: BuildConfig, output: Path, pipeline_args: list[str] | None, config_path: str | None,
                  log) -> BuildResult:
    started = time.monotonic()
    manifest_path = _manifest_path(config)
    files, skipped = list_input_files(config.input, config.read)
    if not files:
        raise FileNotFoundError(f"no .txt/.json/.jsonl(.gz/.zst) files under {', '.join(config.input)}")
    files = with_digests(files)  # an input edited in place is read again, whatever its size and mtime
    config_hash = config.fingerprint()
    build_hash = hashlib.sha256(
        "\n".join([config_hash, _tool_version(), *(f.fingerprint for f in files)]).encode()).hexdigest()

    previous = read_stamp(output) if is_complete(output) and (output / "data" / "meta.bin").is_file() else None
    if previous is not None and previous.get("build_hash") == build_hash:
        entry = DatasetEntry.model_validate(previous["manifest_entry"])
        entry.path = os.path.relpath((output / "data").resolve(), manifest_path.parent.resolve())
        _upsert_locked(manifest_path, entry)  # same bytes when the entry is already there
        log(f"{output}: up to date (same inputs and config); nothing to do")
        return BuildResult(output, output / "data", manifest_path, True, previous["units_in"],
                           previous["extra_pieces"], previous["written"], previous["rejected"],
                           entry.nlines or 0, entry.nbytes or 0, len(files), time.monotonic() - started)

    work_dir = config.resolved_work_dir
    prepare_hash = config.prepare_fingerprint()
    finished = finished_files(work_dir, files, prepare_hash, log)
    done = {f.source_path for f in finished}
    todo = [f for f in files if f.source_path not in done]
    log(f"{len(files)} input files: {len(todo)} to read, {len(finished)} resumed from checkpoints in {work_dir}")

    options = pipeline_options(pipeline_args)
    refuse_unsupported_runner(options)
    staging = new_staging(output)  # replaces leftovers of an interrupted build; checkpoints live in work_dir

    result = run_pipeline(options, lambda pipeline: build_pipeline(pipeline, config, todo, sorted(done), str(staging)),
                          staging)
    counters = _counters(result) if result is not None else {}
    if counters.get(UNCONVERGED_COUNTER, 0):
        raise BuildError(f"near-dedupe clustering did not converge in {config.near_dedupe.cc_rounds} rounds "
                         f"({counters[UNCONVERGED_COUNTER]} nodes unresolved): raise near_dedupe.cc_rounds")

    units_in = sum(read_file_units(work_dir, f.source_path) for f in files)
    collector = StatsCollector(units_in)
    packed = pack_dataset(str(staging), config.dataset_name, config.write, {"build_config_hash": config_hash},
                          on_record=collector.add_record)
    stats = collector.finish(str(staging))
    log(stats.balance_line())
    if not stats.balanced:
        raise BuildError(f"{stats.balance_line()}: records were lost; the output in {staging} was not published")

    built_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    fingerprint = content_fingerprint(packed.path)
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    entry = DatasetEntry(
        dataset_name=config.dataset_name, task_name=config.task_name, weight=config.weight,
        path=os.path.relpath((output / "data").resolve(), manifest_path.parent.resolve()),
        incontext_weight=config.incontext_weight, transforms=config.transforms, escaped=True,
        nlines=packed.nlines, nbytes=packed.nbytes,
        fingerprints=Fingerprints(content=fingerprint),
        provenance=Provenance(build_config=config_path, inputs=list(config.input), built_at=built_at,
                              tool_version=_tool_version(), build_config_hash=config_hash),
    )
    context = {
        "dataset_name": config.dataset_name, "task_name": config.task_name, "inputs": list(config.input),
        "config_hash": config_hash, "nlines": packed.nlines, "nbytes": packed.nbytes, "built_at": built_at,
        "content_fingerprint": fingerprint, "counters": counters, "skipped_files": skipped,
        "resumed_files": sorted(done), "seconds": round(time.monotonic() - started, 3),
        "quality_thresholds": config.quality.model_dump(exclude={"apply_to_json"}),
    }
    write_report(staging, stats, context)
    (staging / "build_config.json").write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
    write_stamp(staging, {
        "build_hash": build_hash, "units_in": stats.units_in, "extra_pieces": stats.extra_pieces,
        "written": stats.written, "rejected": stats.rejected,
        "manifest_entry": entry.model_dump(mode="json", exclude_unset=True),
    })
    kill_at("before_swap")
    swap_into_place(staging, output, fault=kill_at)
    kill_at("before_manifest")
    _upsert_locked(manifest_path, entry)
    return BuildResult(output, output / "data", manifest_path, False, stats.units_in, stats.extra_pieces,
                       stats.written, stats.rejected, packed.nlines, packed.nbytes, len(finished),
                       time.monotonic() - started)
