"""The local runner of corpus builds: Beam's FnApiRunner, started the way the DirectRunner starts
it, with the stage inputs cut into bundles of bounded size.

Beam's DirectRunner first tries PrismRunner, which downloads a Go binary from GitHub at
start-up (and, offline, fails and falls back after the attempt). A build must never fetch
anything at run time, so `--runner=DirectRunner` (and no `--runner` at all) runs this
instead: the same FnApiRunner the DirectRunner falls back to for batch pipelines, with the
same `--direct_num_workers` / `--direct_running_mode` options and the pipeline options passed
to its workers. Unlike the DirectRunner's default of one worker, it uses every available core
unless `--direct_num_workers` says otherwise (`local_instead_of_direct`).

With several workers the FnApiRunner sends each one its whole share of a stage's input as one
message, so a worker's memory grows with the corpus (and a share over 2 GB fails in gRPC).
Here a stage's input is cut into bundles of at most MAX_BUNDLE_BYTES (or MAX_BUNDLE_VALUES
grouped values), `--direct_num_workers` of them in flight, as a cluster runner bundles its
input. Its workers start with Arrow's system memory pool (see worker_memory.py).

When the last stage is done, the worker processes are stopped all at once and in the
background (`StoppingWorkers`): Beam stops them one after another and waits for each to exit
(~0.5 s each), time in which the build can already pack its dataset. `wait_for_workers(result)`
waits for them (the build does, before it returns).

The bundling and the stopping reach into the FnApiRunner's bundle managers, buffers and worker
handler manager of the pinned Beam version; tests/corpus/pipeline/test_pipeline_local_runner.py
fails if they change.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from apache_beam.metrics import monitoring_infos
from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    StandardOptions,
)
from apache_beam.portability.api import beam_fn_api_pb2, beam_provision_api_pb2
from apache_beam.runners.portability.fn_api_runner import execution, fn_runner, worker_handlers
from apache_beam.transforms import environments
from apache_beam.runners.portability.portable_runner import JobServiceHandle
from apache_beam.runners.runner import PipelineRunner

NAME = f"{__name__}.LocalRunner"
_DIRECT_NAMES = {"direct", "directrunner"}
MAX_BUNDLE_BYTES = 8 << 20  # an ungrouped input: encoded bytes per bundle
MAX_BUNDLE_VALUES = 20_000  # a grouped input: values per bundle
# Read by Arrow's C++ code when a worker loads pyarrow (see worker_memory.py)
WORKER_ENVIRONMENT = {"ARROW_DEFAULT_MEMORY_POOL": "system"}
# What a worker process runs in multi_processing mode: Beam's harness, imported quietly (beam_worker.py)
WORKER_COMMAND = f"{sys.executable} -m corpus.pipeline.beam_worker"


_LOGGER = logging.getLogger(__name__)


class LocalRunner(PipelineRunner):
    """FnApiRunner with the pipeline options in its workers' provision info (as DirectRunner does).
    Its result's worker processes may still be stopping: see `wait_for_workers`."""

    def run_pipeline(self, pipeline, options: PipelineOptions):
        encoded = JobServiceHandle.encode_pipeline_options(worker_options(options))
        provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
        runner = _BoundedFnApiRunner(provision_info=provision)
        try:
            with _worker_environment():  # worker processes start inside run_pipeline and inherit it
                result = runner.run_pipeline(pipeline, options)
        except BaseException:
            runner.wait_for_workers()  # a failed run returns with its workers gone, as Beam's does
            raise
        result.stopping_workers = runner.stopping_workers
        return result


def wait_for_workers(result) -> None:
    """Wait until the worker processes of a `LocalRunner` run (`result`, the pipeline's result)
    have exited; returns at once for another runner's result."""
    stopping = getattr(result, "stopping_workers", None)
    if stopping is not None:
        stopping.join()


class StoppingWorkers(worker_handlers.WorkerHandlerManager):
    """The FnApiRunner's worker handler manager, whose `close_all` (called when the last stage is
    done, or the run failed) stops every worker at once in a background thread, `stopping`."""

    stopping: threading.Thread | None = None

    def close_all(self) -> None:
        handlers = {handler for found in self._cached_handlers.values() for handler in found}
        server, self._grpc_server = self._grpc_server, None
        self._cached_handlers.clear()
        self._workers_by_id = {}

        def close(handler) -> None:
            try:
                handler.close()  # ends the control stream, then waits for the worker process to exit
            except Exception:  # as Beam's close_all: a worker that fails to stop is logged, not raised
                _LOGGER.error("Error closing worker_handler %s", handler, exc_info=True)

        def close_everything() -> None:
            closing = [threading.Thread(target=close, args=(handler,), name="close-worker") for handler in handlers]
            for thread in closing:
                thread.start()
            for thread in closing:
                thread.join()
            if server is not None:
                server.close()

        self.stopping = threading.Thread(target=close_everything, name="stop-local-workers")
        self.stopping.start()


def worker_options(options: PipelineOptions) -> dict:
    """The options a worker process starts with: only those set away from their default (a
    default flag such as `pipeline_type_check` would reach the worker as `--pipeline_type_check`,
    which Beam's parser does not know, and every worker would log "Discarding unparseable
    args"), and worker logs at WARNING unless `--default_sdk_harness_log_level` says otherwise."""
    found = options.get_all_options(drop_default=True)
    found.setdefault("default_sdk_harness_log_level", "WARNING")
    return found


@contextmanager
def _worker_environment():
    """WORKER_ENVIRONMENT in os.environ (where not set already) while the runner starts workers."""
    added = [name for name in WORKER_ENVIRONMENT if name not in os.environ]
    os.environ.update({name: WORKER_ENVIRONMENT[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, as containers and `taskset` set it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def local_instead_of_direct(options: PipelineOptions, flags: Sequence[str] = ()) -> PipelineOptions:
    """`options` with the DirectRunner (named or by default) replaced by `LocalRunner`; other runners untouched.

    Locally, a build uses every available core: without `--direct_num_workers` in `flags` (or
    with `--direct_num_workers=0`) it runs `available_cores()` workers, and more than one worker
    runs in worker processes (`multi_processing`) unless `--direct_running_mode` says otherwise.
    """
    standard = options.view_as(StandardOptions)
    if standard.runner is None or str(standard.runner).lower() in _DIRECT_NAMES:
        standard.runner = NAME
        direct = options.view_as(DirectOptions)
        given = {flag.split("=", 1)[0] for flag in flags}
        if "--direct_num_workers" not in given or not direct.direct_num_workers:
            direct.direct_num_workers = available_cores()
        if "--direct_running_mode" not in given and direct.direct_num_workers > 1:
            direct.direct_running_mode = "multi_processing"
    return options


def local_workers(options: PipelineOptions) -> int | None:
    """How many workers run at once on `LocalRunner` (`in_memory` is one), None on another runner."""
    if options.view_as(StandardOptions).runner != NAME:
        return None
    direct = options.view_as(DirectOptions)
    return 1 if direct.direct_running_mode == "in_memory" else max(1, direct.direct_num_workers)


def bundle_count(buffer, workers: int) -> int:
    """How many bundles `buffer` (one input of a stage) goes in: at least one per worker."""
    if isinstance(buffer, execution.ListBuffer) and not buffer.cleared:
        return max(workers, math.ceil(sum(map(len, buffer)) / MAX_BUNDLE_BYTES))
    if isinstance(buffer, execution.GroupingBuffer):
        return max(workers, math.ceil(sum(map(len, buffer._table.values())) / MAX_BUNDLE_VALUES))
    return workers


class BoundedBundleManager(fn_runner.ParallelBundleManager):
    """ParallelBundleManager that cuts a large input into more bundles than workers and keeps one
    bundle a worker in flight."""

    def process_bundle(self, inputs, expected_outputs, fired_timers, expected_output_timers, dry_run=False):
        count = max((bundle_count(buffer, self._num_workers) for buffer in inputs.values()), default=0)
        if count <= self._num_workers:
            return super().process_bundle(inputs, expected_outputs, fired_timers, expected_output_timers, dry_run)
        parts = {name: buffer.partition(count) for name, buffer in inputs.items()}
        bundles = max(map(len, parts.values()))
        part_inputs = [{name: part[i] if i < len(part) else [] for name, part in parts.items()} for i in range(bundles)]
        timers = [fired_timers if i == 0 else {} for i in range(bundles)]  # as ParallelBundleManager: all on the first

        def execute(part_and_timers):
            part, part_timers = part_and_timers
            manager = fn_runner.BundleManager(self.bundle_context_manager, self._progress_frequency,
                                              cache_token_generator=self._cache_token_generator)
            return manager.process_bundle(part, expected_outputs, part_timers, expected_output_timers, dry_run)

        results, split_results = [], []
        with ThreadPoolExecutor(self._num_workers) as executor:
            for result, splits in executor.map(execute, zip(part_inputs, timers)):
                results.append(result)
                split_results += splits
        merged = beam_fn_api_pb2.InstructionResponse(
            process_bundle=beam_fn_api_pb2.ProcessBundleResponse(monitoring_infos=monitoring_infos.consolidate(
                info for result in results for info in result.process_bundle.monitoring_infos)),
            error=next((result.error for result in results if result.error), ""))
        return merged, split_results


class _BoundedFnApiRunner(fn_runner.FnApiRunner):
    _worker_manager: StoppingWorkers | None = None

    @property
    def stopping_workers(self) -> threading.Thread | None:
        """The thread stopping this run's workers (None: none were started)."""
        return self._worker_manager.stopping if self._worker_manager is not None else None

    def wait_for_workers(self) -> None:
        if self.stopping_workers is not None:
            self.stopping_workers.join()

    # FnApiRunner.run_pipeline sets the environment of multi_processing workers to Beam's own
    # worker command; the setter swaps in WORKER_COMMAND, leaving the other environments alone.
    @property
    def _default_environment(self):
        return self._environment

    @_default_environment.setter
    def _default_environment(self, environment):
        if isinstance(environment, environments.SubprocessSDKEnvironment):
            environment = environments.SubprocessSDKEnvironment.from_command_string(WORKER_COMMAND)
        self._environment = environment

    def _get_bundle_manager(self, bundle_context_manager):
        workers = bundle_context_manager.execution_context.worker_handler_manager
        if type(workers) is worker_handlers.WorkerHandlerManager:  # run_stages made it: it stops workers our way
            workers.__class__ = StoppingWorkers
            self._worker_manager = workers
        manager = super()._get_bundle_manager(bundle_context_manager)
        if type(manager) is not fn_runner.ParallelBundleManager:  # one worker, or a stateful stage
            return manager
        return BoundedBundleManager(bundle_context_manager, self._progress_frequency,
                                    cache_token_generator=fn_runner.FnApiRunner.get_cache_token_generator(static=False))
