"""Builds run locally on Beam's FnApiRunner, never try PrismRunner (which downloads a binary), cut
large stage inputs into bounded bundles, and their workers load the worker memory settings."""

from __future__ import annotations

import logging
import os

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (
    PipelineOptions,
    SetupOptions,
    StandardOptions,
)
from apache_beam.testing.util import assert_that, equal_to

from corpus.pipeline import local_runner
from corpus.pipeline.build import WORKER_MEMORY_PLUGIN, pipeline_options
from corpus.pipeline.cli import beam_argument_parser
from corpus.pipeline.local_runner import NAME, worker_options


def test_workers_start_with_options_their_parser_knows_and_quiet_logs():
    options = worker_options(pipeline_options(["--direct_num_workers=2"]))
    assert options["direct_num_workers"] == 2 and options["default_sdk_harness_log_level"] == "WARNING"
    assert "pipeline_type_check" not in options  # reached workers as an unknown --pipeline_type_check
    flags = PipelineOptions.from_dictionary(options).get_all_options(retain_unknown_options=True)
    _, unknown = beam_argument_parser().parse_known_args(PipelineOptions.from_dictionary(options)._flags)
    assert unknown == [] and flags["beam_plugins"] == [WORKER_MEMORY_PLUGIN]
    chosen = worker_options(pipeline_options(["--default_sdk_harness_log_level=DEBUG"]))
    assert chosen["default_sdk_harness_log_level"] == "DEBUG"


def test_the_direct_runner_named_or_by_default_becomes_the_local_runner_and_others_stay():
    assert pipeline_options([]).view_as(StandardOptions).runner == NAME
    assert pipeline_options(["--runner=DirectRunner"]).view_as(StandardOptions).runner == NAME
    assert pipeline_options(["--runner", "direct"]).view_as(StandardOptions).runner == NAME
    assert pipeline_options(["--runner=FlinkRunner"]).view_as(StandardOptions).runner == "FlinkRunner"


def test_a_pipeline_runs_with_two_worker_processes_without_trying_prism(caplog):
    with caplog.at_level(logging.INFO):
        with beam.Pipeline(options=pipeline_options(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])) as p:
            out = p | beam.Create(range(20)) | beam.Reshuffle() | beam.Map(lambda x: x * x)
            assert_that(out, equal_to([x * x for x in range(20)]))
    assert "Prism" not in caplog.text and "prism" not in caplog.text


def _count_bundles() -> beam.ParDo:
    """Passes elements through, counting bundles. (Defined in a function so the workers, which
    cannot import this test module, get it by value.)"""

    class CountBundles(beam.DoFn):
        def start_bundle(self):
            Metrics.counter("test", "bundles").inc()

        def process(self, element):
            yield element

    return beam.ParDo(CountBundles())


def _bundles(result) -> int:
    return result.metrics().query(MetricsFilter().with_name("bundles"))["counters"][0].committed


TWO_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def test_a_large_grouped_input_is_cut_into_bounded_bundles(monkeypatch):
    monkeypatch.setattr(local_runner, "MAX_BUNDLE_VALUES", 10)
    pipeline = beam.Pipeline(options=pipeline_options(TWO_WORKERS))
    grouped = (pipeline | beam.Create([(k % 50, k) for k in range(200)]) | beam.GroupByKey()
               | _count_bundles() | beam.MapTuple(lambda key, values: (key, sorted(values))))
    assert_that(grouped, equal_to([(k, list(range(k, 200, 50))) for k in range(50)]))
    result = pipeline.run()
    result.wait_until_finish()
    assert _bundles(result) >= 20  # 200 values, at most 10 a bundle


def test_a_large_ungrouped_input_is_cut_into_bounded_bundles(monkeypatch):
    monkeypatch.setattr(local_runner, "MAX_BUNDLE_BYTES", 1000)
    pipeline = beam.Pipeline(options=pipeline_options(TWO_WORKERS))
    texts = [f"{i:06d}" * 20 for i in range(300)]  # 36 KB
    flattened = ((pipeline | "A" >> beam.Create(texts[:150]), pipeline | "B" >> beam.Create(texts[150:]))
                 | beam.Flatten() | _count_bundles())
    assert_that(flattened, equal_to(texts))
    result = pipeline.run()
    result.wait_until_finish()
    assert _bundles(result) >= 30


def test_bundles_stay_one_a_worker_when_the_input_is_small():
    pipeline = beam.Pipeline(options=pipeline_options(TWO_WORKERS))
    grouped = pipeline | beam.Create([(k % 5, k) for k in range(20)]) | beam.GroupByKey() | _count_bundles()
    assert_that(grouped | beam.Keys(), equal_to(list(range(5))))
    result = pipeline.run()
    result.wait_until_finish()
    assert _bundles(result) == 2


def test_build_workers_load_the_worker_memory_plugin_and_start_with_the_system_arrow_pool(monkeypatch):
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    assert WORKER_MEMORY_PLUGIN in pipeline_options([]).view_as(SetupOptions).beam_plugins
    assert pipeline_options([f"--beam_plugins={WORKER_MEMORY_PLUGIN}"]).view_as(SetupOptions).beam_plugins == [WORKER_MEMORY_PLUGIN]

    def worker_memory_state(_):
        import os
        import sys

        import pyarrow as pa

        return ("corpus.pipeline.worker_memory" in sys.modules, os.environ.get("ARROW_DEFAULT_MEMORY_POOL"),
                pa.default_memory_pool().backend_name)

    with beam.Pipeline(options=pipeline_options(TWO_WORKERS)) as p:
        states = p | beam.Create(range(4)) | beam.Reshuffle() | beam.Map(worker_memory_state) | beam.Distinct()
        assert_that(states, equal_to([(True, "system", "system")]))
    assert "ARROW_DEFAULT_MEMORY_POOL" not in os.environ  # set for the workers only


def _worker_processes() -> list:
    import psutil

    return [child for child in psutil.Process().children(recursive=True)
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
            and "corpus.pipeline.beam_worker" in " ".join(child.cmdline())]


def test_workers_stop_in_the_background_and_wait_for_workers_returns_when_they_are_gone():
    """The build packs its dataset while the workers stop, and waits for them before it returns."""
    with beam.Pipeline(options=pipeline_options(TWO_WORKERS)) as p:
        out = p | beam.Create(range(20)) | beam.Reshuffle() | beam.Map(lambda x: x + 1)
        assert_that(out, equal_to([x + 1 for x in range(20)]))
    assert p.result.stopping_workers is not None
    local_runner.wait_for_workers(p.result)
    assert not p.result.stopping_workers.is_alive() and _worker_processes() == []
    local_runner.wait_for_workers(object())  # another runner's result: nothing to wait for
