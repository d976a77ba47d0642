"""`bee corpus build`: config file plus flag overrides, Beam flags passed through, errors that
name the field."""

from __future__ import annotations

from typer.testing import CliRunner

from corpus.pipeline.cli import argument_parser, config_from_args
from flows.cli import app


def test_own_flags_override_the_config_and_the_rest_goes_to_beam(tmp_path):
    config = tmp_path / "build.yaml"
    config.write_text("input: [in]\noutput: out\ndataset_name: d\ntask_name: t\nsplit: {min_length: 5}\n")
    args, beam_args = argument_parser().parse_known_args(
        [str(config), "--output", "elsewhere", "--runner=DirectRunner", "--direct_num_workers", "2"])
    built = config_from_args(args)
    assert (built.output, built.input, built.split.min_length) == ("elsewhere", ["in"], 5)
    assert beam_args == ["--runner=DirectRunner", "--direct_num_workers", "2"]


def test_cli_builds_from_flags_alone(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text(
        "Apache Beam is a unified model for defining both batch and streaming data-parallel processing pipelines. "
        "Using one of the open source Beam SDKs, you build a program that defines the pipeline.\n")
    result = CliRunner().invoke(app, ["corpus", "build", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                                      "--dataset-name", "d", "--task-name", "t", "--direct_num_workers=1"])
    assert result.exit_code == 0, result.output
    assert "records in 1 + split pieces 0 == written 1 + rejected 0" in result.output
    assert (tmp_path / "out" / "data" / "meta.bin").exists() and (tmp_path / "datasets.json").exists()


def test_bad_config_is_an_error_naming_the_field(tmp_path):
    config = tmp_path / "build.yaml"
    config.write_text("input: [in]\noutput: out\ndataset_name: d\ntask_name: t\nsplit: {min_length: 500, max_length: 10}\n")
    result = CliRunner().invoke(app, ["corpus", "build", str(config)])
    assert result.exit_code == 1
    assert "build.yaml" in result.output and "min_length" in result.output
