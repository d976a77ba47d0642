"""Builds run locally on Beam's FnApiRunner and never try PrismRunner (which downloads a binary)."""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.util import assert_that, equal_to

from corpus.pipeline.build import pipeline_options
from corpus.pipeline.local_runner import NAME


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
