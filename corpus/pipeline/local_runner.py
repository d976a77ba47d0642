"""The local runner of corpus builds: Beam's FnApiRunner, started the way the DirectRunner starts it.

Beam's DirectRunner first tries PrismRunner, which downloads a Go binary from GitHub at
start-up (and, offline, fails and falls back after the attempt). A build must never fetch
anything at run time, so `--runner=DirectRunner` (and no `--runner` at all) runs this
instead: the same FnApiRunner the DirectRunner falls back to for batch pipelines, with the
same `--direct_num_workers` / `--direct_running_mode` options and the pipeline options passed
to its workers.
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.portability.portable_runner import JobServiceHandle
from apache_beam.runners.runner import PipelineRunner

NAME = f"{__name__}.LocalRunner"
_DIRECT_NAMES = {"direct", "directrunner"}


class LocalRunner(PipelineRunner):
    """FnApiRunner with the pipeline options in its workers' provision info (as DirectRunner does)."""

    def run_pipeline(self, pipeline, options: PipelineOptions):
        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
        return fn_runner.FnApiRunner(provision_info=provision).run_pipeline(pipeline, options)


def local_instead_of_direct(options: PipelineOptions) -> PipelineOptions:
    """`options` with the DirectRunner (named or by default) replaced by `LocalRunner`; other runners untouched."""
    standard = options.view_as(StandardOptions)
    if standard.runner is None or str(standard.runner).lower() in _DIRECT_NAMES:
        standard.runner = NAME
    return options
