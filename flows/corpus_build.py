"""Prefect flow `corpus-build`: build every dataset of a build plan, verify it, report it.

Thin orchestration over `corpus.pipeline.build.build_corpus` (the same function `bee corpus
build` calls): retries for transient I/O, one Markdown artifact per dataset, and a skip when a
dataset is up to date. The skip is decided by `build_corpus` itself from the fingerprints of
the inputs and the config (its build stamp), so the CLI and the flow skip alike and a deleted
output is rebuilt rather than served from a stale result cache.

A remote output (`s3://`, `gs://`, `hdfs://`) is verified and reported through Beam's
filesystems, with the endpoint and credentials of the same Beam flags the build was given.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from corpus.dataset import verify_dataset
from corpus.pipeline import remote_output
from corpus.pipeline.build import BuildResult, build_corpus
from corpus.pipeline.parquet_shards import REJECTS_DIR
from corpus.pipeline.report import REPORT_HTML, REPORT_JSON, load_report, render_markdown
from schemas import BuildConfig, BuildPlan, RunnerProfile, load_file


def _is_transient(task, task_run, state) -> bool:
    """Retry I/O hiccups (network filesystems, object stores), not bad configs or corrupt data."""
    try:
        state.result()
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError):
        return False
    except OSError:
        return True
    except Exception:
        return False
    return False


def pipeline_args(runner_profile: str | None, runner_options: list[str] | None) -> list[str]:
    """Beam flags: the profile's (infra/runners/*.yaml) first, then explicit ones, which win."""
    args = list(load_file(RunnerProfile, runner_profile).options) if runner_profile else []
    return args + list(runner_options or [])


@task(name="build-dataset", retries=2, retry_delay_seconds=10, retry_condition_fn=_is_transient)
def build_dataset(config: BuildConfig, args: list[str], config_path: str) -> BuildResult:
    logger = get_run_logger()
    result = build_corpus(config, args, config_path=config_path, log=logger.info)
    logger.info(result.summary_line())
    return result


@task(name="verify-dataset", retries=2, retry_delay_seconds=5, retry_condition_fn=_is_transient)
def verify(result: BuildResult, args: list[str] | None = None) -> int:
    """Walk every block of the packed dataset, local or remote (block by block through Beam's
    filesystems, set up from the build's flags `args`); returns the number of records checked."""
    if remote_output.is_remote(result.dataset_path):
        remote_output.use_filesystem_options(args)
    report = verify_dataset(result.dataset_path)
    return report.nlines


def _in_output(result: BuildResult, name: str) -> Path | str:
    return remote_output.join(result.output, name) if isinstance(result.output, str) else result.output / name


def read_build_report(result: BuildResult) -> tuple | None:
    """(stats, context) of the build's report.json, local or remote; None when it has none.
    A remote report (a few kB) is read through Beam's filesystems into a temporary folder, so
    `load_report` stays the one parser of it."""
    if not isinstance(result.output, str):
        return load_report(result.output) if (result.output / REPORT_JSON).exists() else None
    text = remote_output.read_text(_in_output(result, REPORT_JSON))
    if text is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / REPORT_JSON).write_text(text, encoding="utf-8")
        return load_report(Path(folder))


def build_summary_markdown(config: BuildConfig, result: BuildResult) -> str:
    """The artifact of one dataset build: the build report itself (balance, summary, drops by
    stage and reason, thresholds, counters) with the status on top and where the files are."""
    status = "up to date, skipped" if result.up_to_date else f"built in {result.seconds:.1f} s"
    lines = [
        f"**{config.task_name}.{config.dataset_name}: {status}**",
        "",
        "| records in | split pieces | written | rejected | dataset lines | dataset bytes |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {result.units_in} | {result.extra_pieces} | {result.written} | {result.rejected} "
        f"| {result.nlines} | {result.nbytes} |",
        "",
    ]
    report = read_build_report(result)
    if report is not None:
        lines.append(render_markdown(*report, plots=False))
    lines += [
        "## Files",
        "",
        f"- report with plots and rejected examples: `{_in_output(result, REPORT_HTML)}`",
        f"- dataset: `{result.dataset_path}`",
        f"- rejects: `{_in_output(result, REJECTS_DIR)}`",
        f"- manifest: `{result.manifest_path}`",
    ]
    return "\n".join(lines) + "\n"


def _artifact_key(config: BuildConfig) -> str:
    # Prefect artifact keys: lowercase letters, digits and dashes.
    raw = f"corpus-build-{config.task_name}-{config.dataset_name}".lower()
    return "".join(c if c.isalnum() else "-" for c in raw)


@flow(name="corpus-build", log_prints=True)
def corpus_build(
    build_config: str,
    runner_profile: str | None = None,
    runner_options: list[str] | None = None,
) -> list[dict]:
    """Build every dataset of `build_config` (a BuildConfig or a BuildPlan file, YAML or JSON).

    `runner_profile` names an infra/runners/*.yaml file; `runner_options` are extra Beam flags.
    Returns one summary per dataset. A failing Beam job fails its task with the job's error.
    """
    logger = get_run_logger()
    plan = load_file(BuildPlan, build_config)
    args = pipeline_args(runner_profile, runner_options)
    summaries = []
    for config in plan.datasets:
        result = build_dataset(config, args, str(Path(build_config)))
        checked = verify(result, args)
        logger.info("%s.%s: %s; verified %d records", config.task_name, config.dataset_name,
                    "up to date" if result.up_to_date else "built", checked)
        create_markdown_artifact(
            markdown=build_summary_markdown(config, result),
            key=_artifact_key(config),
            description=f"corpus build of {config.task_name}.{config.dataset_name}",
        )
        summaries.append({
            "dataset": f"{config.task_name}.{config.dataset_name}",
            "up_to_date": result.up_to_date,
            "written": result.written,
            "rejected": result.rejected,
            "dataset_path": str(result.dataset_path),
            "manifest": str(result.manifest_path),
        })
    return summaries
