"""Running the build's Beam pipeline on the runner the user chose, with failures the user can act on.

A runner that cannot start or reach its job server (a Flink or Spark job server that is not
running, a job-server jar that cannot be downloaded offline) ends the build with one line
naming the runner, the cause and the profile that says what to start, and leaves no
`<output>.building/` behind. Beam's DaskRunner is refused up front: it sends a DoFn's tagged
outputs into its main output, and every stage of this pipeline routes rejects (and the
checkpoint's `done` files) through tagged outputs, so records would be silently mixed up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, StandardOptions

from corpus.pipeline.local_runner import NAME as LOCAL_RUNNER
from corpus.pipeline.output_folder import remove_our_folder

PROFILES = "infra/runners"


class RunnerFailed(RuntimeError):
    """The chosen runner could not run the pipeline; `str()` is one line."""


def runner_name(options: PipelineOptions) -> str:
    runner = options.view_as(StandardOptions).runner
    return runner if isinstance(runner, str) else type(runner).__name__


def refuse_unsupported_runner(options: PipelineOptions) -> None:
    """Raise RunnerFailed for a runner that cannot run this pipeline (Beam's DaskRunner)."""
    name = runner_name(options)
    if "dask" in name.lower():
        raise RunnerFailed(f"runner {name} cannot run the corpus build: Beam's DaskRunner sends tagged outputs "
                           "(the rejects of every stage) into the main output; use the DirectRunner, FlinkRunner, "
                           f"SparkRunner or DataflowRunner (see {PROFILES}/)")


def _profile_hint(name: str) -> str:
    for runner, profile in (("flink", "flink.yaml"), ("spark", "spark.yaml"), ("dataflow", "dataflow.yaml"),
                            ("portable", "flink.yaml")):
        if runner in name.lower():
            return f"; see {PROFILES}/{profile} for what to start"
    return ""


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 400 else text[:397] + "..."


def run_pipeline(options: PipelineOptions, build: Callable[[beam.Pipeline], None], staging: Path):
    """Build the pipeline with `build(pipeline)`, run it to the end and return its result.

    On any failure `staging` (ours) is deleted; on a runner other than the local one the
    failure is raised as RunnerFailed with one line (the runner's own log has the details).
    """
    name = runner_name(options)
    try:
        with beam.Pipeline(options=options) as pipeline:
            build(pipeline)
    except BaseException as error:
        remove_our_folder(staging)
        if name == LOCAL_RUNNER or not isinstance(error, Exception):
            raise
        portable = options.view_as(PortableOptions)
        where = f" (job server {portable.job_endpoint})" if portable.job_endpoint else ""
        cause = _first_line(error) or (f"no job server answered within {portable.job_server_timeout} s"
                                       if portable.job_endpoint else "(no message)")
        raise RunnerFailed(f"runner {name} failed{where}: {type(error).__name__}: {cause}{_profile_hint(name)}") from None
    return getattr(pipeline, "result", None)
