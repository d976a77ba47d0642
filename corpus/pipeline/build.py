"""`build_corpus`: the one function behind `bee corpus build` and the corpus-build flow.

Check the output may be written (output_folder.py) and lock it → list inputs and digest their
bytes → skip if the same build already finished → run the Beam pipeline into a staging folder
(resuming checkpointed input files) → pack the binary dataset → check
`records in = written + rejected` → write the report → swap the staging folder into place →
upsert the manifest entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from corpus.dataset.lock import folder_lock
from corpus.faults import fault_point
from corpus.manifest import upsert_entry
from corpus.pipeline import (
    clean,
    dedupe_exact,
    dedupe_minhash,
    escape,
    quality,
    read,
    remote_output,
    split,
)
from corpus.pipeline.connected_components import UNCONVERGED_COUNTER
from corpus.pipeline.decontaminate import eval_sets_digest
from corpus.pipeline.file_checkpoints import finished_files, read_file_units
from corpus.pipeline.flags import check_beam_flags
from corpus.pipeline.input_digest import with_digests
from corpus.pipeline.local_runner import local_instead_of_direct, local_workers, wait_for_workers
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
from corpus.pipeline.pack import DATASET_DIR, content_fingerprint, pack_dataset
from corpus.pipeline.pipeline import build_pipeline
from corpus.pipeline.quiet_beam import quiet_harness
from corpus.pipeline.ranges import split_files
from corpus.pipeline.read import SKIP_REASONS, SkippedPath, list_input_files
from corpus.pipeline.report import REPORT_JSON, REPORT_MD, StatsCollector, write_report
from corpus.pipeline.runners import RunnerFailed, refuse_unsupported_runner, run_pipeline
from corpus.pipeline.stage import METRICS_NAMESPACE
from schemas import BuildConfig, DatasetEntry
from schemas.manifest import Fingerprints, Provenance

STAGE_ORDER = (read.STAGE, clean.STAGE, split.STAGE, quality.STAGE, dedupe_exact.STAGE, dedupe_minhash.STAGE,
               escape.STAGE)
WORKER_MEMORY_PLUGIN = "corpus.pipeline.worker_memory"  # imported by each worker at start-up (never here)


class BuildError(RuntimeError):
    """A build that ran but cannot be trusted (records lost, clustering not converged)."""


@dataclass(frozen=True)
class BuildResult:
    """What a build produced (or found already built)."""

    output: Path | str  # a str URL for a remote output (s3://, gs://, hdfs://)
    dataset_path: Path | str
    manifest_path: Path | str
    up_to_date: bool
    units_in: int
    extra_pieces: int
    written: int
    rejected: int
    nlines: int
    nbytes: int
    resumed_files: int
    seconds: float
    workers: int | None = None  # workers that ran at once on the local runner; None: another runner, or nothing ran
    input_bytes: int = 0  # bytes of the input files, as stored (compressed files count compressed)
    rejected_by_stage: dict[str, int] = field(default_factory=dict)
    skipped: list[SkippedPath] = field(default_factory=list)  # paths under the input roots not read, with the reason

    @property
    def report_path(self) -> Path | str:
        return remote_output.join(self.output, REPORT_MD) if isinstance(self.output, str) else self.output / REPORT_MD

    def balance_line(self) -> str:
        return (f"records in {self.units_in} + split pieces {self.extra_pieces} == "
                f"written {self.written} + rejected {self.rejected}")

    def summary_line(self) -> str:
        """One line a person can check: records in, written, rejected by stage, workers, speed, report."""
        stages = ", ".join(f"{stage} {n}" for stage, n in self.rejected_by_stage.items() if n)
        megabytes = self.input_bytes / 1e6
        if self.up_to_date:
            run = f"up to date, nothing run ({megabytes:.1f} MB of input)"
        else:
            workers = f"{self.workers} worker{'s' if self.workers != 1 else ''}" if self.workers else "workers of the runner"
            speed = megabytes / self.seconds if self.seconds > 0 else 0.0
            run = f"{workers}, {megabytes:.1f} MB in {self.seconds:.1f} s = {speed:.1f} MB/s"
        reasons = ", ".join(f"{reason} {n}" for reason, n in skipped_by_reason(self.skipped).items())
        skipped = f"; {len(self.skipped)} path{'s' if len(self.skipped) != 1 else ''} not read ({reasons})" if self.skipped else ""
        return (f"{self.units_in} records in (+{self.extra_pieces} split pieces), {self.written} written, "
                f"{self.rejected} rejected" + (f" ({stages})" if stages else "") +
                f"; {run}{skipped}; report: {self.report_path}")


def _tool_version() -> str:
    try:
        return metadata.version("bee-toolchain")
    except metadata.PackageNotFoundError:
        return "unknown"


def pipeline_options(pipeline_args: list[str] | None) -> PipelineOptions:
    """Beam options from the leftover command-line flags. Without `--runner`, or with the
    DirectRunner, the build runs on `LocalRunner` (the DirectRunner's FnApiRunner, never Prism),
    with one worker per available core unless `--direct_num_workers` says otherwise.
    Workers of every runner load the `worker_memory` plugin; Beam's loggers here show only
    errors unless the flags set `--default_sdk_harness_log_level` (quiet_beam.py). Raises FlagError
    for a flag Beam does not know."""
    flags = list(pipeline_args or [])
    check_beam_flags(flags)
    options = quiet_harness(local_instead_of_direct(PipelineOptions(flags), flags))
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


def skipped_by_reason(skipped: list[SkippedPath]) -> dict[str, int]:
    """How many paths were not read, per reason (most first)."""
    counts: dict[str, int] = {}
    for path in skipped:
        counts[path.reason] = counts.get(path.reason, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _per_stage(rejects: dict[str, dict[str, int]]) -> dict[str, int]:
    """Rejects per stage (from stage -> reason -> count), in pipeline order."""
    totals = {stage: sum(reasons.values()) for stage, reasons in rejects.items()}
    return dict(sorted(totals.items(), key=lambda item: (
        STAGE_ORDER.index(item[0]) if item[0] in STAGE_ORDER else len(STAGE_ORDER), item[0])))


def _rejected_by_stage(output: Path | str) -> dict[str, int]:
    """Rejects per stage, from a finished build's report.json (empty if it has none)."""
    try:
        if isinstance(output, str):
            text = remote_output.read_text(remote_output.join(output, REPORT_JSON)) or ""
        else:
            text = (output / REPORT_JSON).read_text(encoding="utf-8")
        return _per_stage(json.loads(text)["rejects"])
    except (OSError, ValueError, KeyError, AttributeError):
        return {}


def _manifest_path(config: BuildConfig) -> Path | str:
    if config.manifest:
        return config.manifest.rstrip("/") if remote_output.is_remote(config.manifest) else Path(config.manifest)
    if remote_output.is_remote(config.output):
        return config.output.rstrip("/").rsplit("/", 1)[0] + "/datasets.json"
    return Path(config.output).parent / "datasets.json"


def _entry_path(dataset: Path | str, manifest_path: Path | str) -> str:
    """The manifest entry's `path` of `dataset`: relative to the manifest's folder where it can be."""
    if isinstance(dataset, str) or isinstance(manifest_path, str):
        if isinstance(manifest_path, str) and isinstance(dataset, str):
            return remote_output.relative_to_manifest(dataset, manifest_path)
        return str(dataset) if isinstance(dataset, str) else str(Path(dataset).resolve())
    return os.path.relpath(dataset.resolve(), manifest_path.parent.resolve())


def _upsert_locked(manifest_path: Path | str, entry: DatasetEntry) -> None:
    """Upsert under the manifest's lock: builds of other outputs may share the manifest. A
    remote manifest has no lock (one writer per manifest, see remote_output.py)."""
    if isinstance(manifest_path, str):
        remote_output.upsert_manifest(manifest_path, entry)
        return
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
    options = pipeline_options(pipeline_args)  # an unknown flag stops the build here
    remote = remote_output.is_remote(config.output)
    if remote:
        FileSystems.set_options(options)  # credentials and endpoint of s3:// / gs:// for the driver's writes
    check_output_location(config.output, list(config.input), config.resolved_work_dir, str(_manifest_path(config)))
    try:
        refuse_unsupported_runner(options)
        if remote:
            url = config.output.rstrip("/")
            with remote_output.output_lock(url):
                remote_output.recover(url, log)
                return _build_locked(config, url, options, config_path, log)
        output = Path(config.output)
        with output_lock(output):
            recover_swap(output, log)
            return _build_locked(config, output, options, config_path, log)
    except (OutputLocked, RunnerFailed) as error:
        raise BuildError(str(error)) from None


def _build_locked(config: BuildConfig, output: Path | str, options: PipelineOptions, config_path: str | None,
                  log) -> BuildResult:
    """The build under the output's lock. `output` is a local Path, or a str URL of an object
    store (then staging, stamp, report and publish go through remote_output.py)."""
    started = time.monotonic()
    remote = isinstance(output, str)
    workers = local_workers(options)
    manifest_path = _manifest_path(config)
    work_dir = config.resolved_work_dir
    if remote:
        own_paths = [output, remote_output.staging_url(output), work_dir, manifest_path]
    else:
        own_paths = [output, output.with_name(output.name + ".building"), output.with_name(output.name + ".old"),
                     Path(work_dir), manifest_path]
    files, skipped = list_input_files(config.input, config.read, exclude=[str(path) for path in own_paths])
    for reason, count in skipped_by_reason(skipped).items():
        examples = [s.path for s in skipped if s.reason == reason][:3]
        log(f"not read ({reason}: {SKIP_REASONS[reason]}): {count} path{'s' if count != 1 else ''}, "
            f"e.g. {', '.join(examples)}; all in {REPORT_MD}")
    input_bytes = sum(f.size for f in files)
    if not files:
        raise FileNotFoundError(f"no .txt/.json/.jsonl(.gz/.zst) files under {', '.join(config.input)}")
    files = with_digests(files)  # an input edited in place is read again, whatever its size and mtime
    config_hash = config.fingerprint()
    eval_digest = [eval_sets_digest(config.decontamination)] if config.decontamination.eval_sets else []
    build_hash = hashlib.sha256(
        "\n".join([config_hash, _tool_version(), *eval_digest, *(f.fingerprint for f in files)]).encode()).hexdigest()

    dataset = remote_output.join(output, DATASET_DIR) if remote else output / DATASET_DIR
    if remote:
        finished_build = remote_output.is_complete(output) and FileSystems.exists(remote_output.join(dataset, "meta.bin"))
        previous = remote_output.read_stamp(output) if finished_build else None
    else:
        previous = read_stamp(output) if is_complete(output) and (dataset / "meta.bin").is_file() else None
    if previous is not None and previous.get("build_hash") == build_hash:
        entry = DatasetEntry.model_validate(previous["manifest_entry"])
        entry.path = _entry_path(dataset, manifest_path)
        _upsert_locked(manifest_path, entry)  # same bytes when the entry is already there
        log(f"{output}: up to date (same inputs and config); nothing to do")
        return BuildResult(output=output, dataset_path=dataset, manifest_path=manifest_path, up_to_date=True,
                           units_in=previous["units_in"], extra_pieces=previous["extra_pieces"],
                           written=previous["written"], rejected=previous["rejected"], nlines=entry.nlines or 0,
                           nbytes=entry.nbytes or 0, resumed_files=len(files), seconds=time.monotonic() - started,
                           input_bytes=input_bytes, rejected_by_stage=_rejected_by_stage(output), skipped=skipped)

    prepare_hash = config.prepare_fingerprint()
    ranges, whole = split_files(files, config.read.split_bytes)
    for note in whole:
        log(note)
    finished = finished_files(work_dir, ranges, prepare_hash, log)
    done = {f.key for f in finished}
    todo = [f for f in ranges if f.key not in done]
    cut = f" (big files cut into {len(ranges)} ranges)" if len(ranges) > len(files) else ""
    log(f"{len(files)} input files{cut}: {len(todo)} to read, {len(finished)} resumed from checkpoints in {work_dir}")

    # replaces leftovers of an interrupted build; checkpoints live in work_dir
    staging = remote_output.new_staging(output) if remote else new_staging(output)
    if workers is not None:
        log(f"running on {workers} local worker{'s' if workers != 1 else ''}")
    result = run_pipeline(options, lambda pipeline: build_pipeline(pipeline, config, todo, sorted(finished), str(staging)),
                          staging)
    try:  # the local runner's workers stop while the dataset is packed
        counters = _counters(result) if result is not None else {}
        args = (manifest_path, build_hash, config_hash, counters, ranges, finished, skipped, workers, input_bytes,
                started, config_path, log)
        if remote:  # the dataset, report and config need local files: written here, then uploaded
            with tempfile.TemporaryDirectory(prefix="bee-build-") as local:
                return _finish(config, output, Path(local), staging, *args)
        return _finish(config, output, staging, staging, *args)
    finally:
        wait_for_workers(result)


def _finish(config: BuildConfig, output: Path | str, local: Path, staging: Path | str, manifest_path: Path | str,
            build_hash: str, config_hash: str, counters: dict[str, int], ranges: list, finished: list,
            skipped: list[SkippedPath], workers: int | None, input_bytes: int, started: float,
            config_path: str | None, log) -> BuildResult:
    """After the Beam job: pack, balance, report and stamp (written to `local`, uploaded to a
    remote `staging`), then publish. For a local output `local` is `staging`."""
    remote = isinstance(output, str)
    work_dir = config.resolved_work_dir
    done = {f.key for f in finished}
    dataset = remote_output.join(output, DATASET_DIR) if remote else output / DATASET_DIR
    if counters.get(UNCONVERGED_COUNTER, 0):
        raise BuildError(f"near-dedupe clustering did not converge in {config.near_dedupe.cc_rounds} rounds "
                         f"({counters[UNCONVERGED_COUNTER]} nodes unresolved): raise near_dedupe.cc_rounds")

    units_in = sum(read_file_units(work_dir, f.key) for f in ranges)
    collector = StatsCollector(units_in)
    packed = pack_dataset(str(staging), config.dataset_name, config.write, {"build_config_hash": config_hash, "escaped": config.dataset_escaped},
                          on_record=collector.add_record, dataset_dir=local / DATASET_DIR)
    stats = collector.finish(str(staging))
    log(stats.balance_line())
    if not stats.balanced:
        raise BuildError(f"{stats.balance_line()}: records were lost; the output in {staging} was not published")

    built_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    fingerprint = content_fingerprint(packed.path)
    if not remote:
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
    entry = DatasetEntry(
        dataset_name=config.dataset_name, task_name=config.task_name, weight=config.weight,
        path=_entry_path(dataset, manifest_path),
        incontext_weight=config.incontext_weight, transforms=config.transforms, escaped=config.dataset_escaped,
        nlines=packed.nlines, nbytes=packed.nbytes,
        fingerprints=Fingerprints(content=fingerprint),
        provenance=Provenance(build_config=config_path, inputs=list(config.input), built_at=built_at,
                              tool_version=_tool_version(), build_config_hash=config_hash),
    )
    context = {
        "dataset_name": config.dataset_name, "task_name": config.task_name, "inputs": list(config.input),
        "config_hash": config_hash, "nlines": packed.nlines, "nbytes": packed.nbytes, "built_at": built_at,
        "content_fingerprint": fingerprint, "counters": counters, "skipped_files": [{"path": s.path, "reason": s.reason} for s in skipped],
        "resumed_files": sorted(done), "workers": workers, "input_bytes": input_bytes, "seconds": round(time.monotonic() - started, 3),
        "quality_thresholds": config.quality.model_dump(exclude={"apply_to_json"}),
        "eval_sets": list(config.decontamination.eval_sets),
    }
    write_report(local, stats, context)
    (local / "build_config.json").write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
    stamp = {
        "build_hash": build_hash, "units_in": stats.units_in, "extra_pieces": stats.extra_pieces,
        "written": stats.written, "rejected": stats.rejected,
        "manifest_entry": entry.model_dump(mode="json", exclude_unset=True),
    }
    if remote:
        remote_output.upload_folder(local, staging)
        remote_output.write_stamp(staging, stamp)  # last: the staging build is complete from here
        fault_point("before_swap")
        remote_output.publish(staging, output, fault=fault_point)
    else:
        write_stamp(staging, stamp)
        fault_point("before_swap")
        swap_into_place(staging, output, fault=fault_point)
    fault_point("before_manifest")
    _upsert_locked(manifest_path, entry)
    return BuildResult(output=output, dataset_path=dataset, manifest_path=manifest_path, up_to_date=False,
                       units_in=stats.units_in, extra_pieces=stats.extra_pieces, written=stats.written,
                       rejected=stats.rejected, nlines=packed.nlines, nbytes=packed.nbytes,
                       resumed_files=len(finished), seconds=time.monotonic() - started, workers=workers,
                       input_bytes=input_bytes, rejected_by_stage=_per_stage(stats.rejects), skipped=skipped)
