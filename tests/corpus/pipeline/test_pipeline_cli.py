"""`bee corpus build`: config file plus flag overrides, Beam flags passed through, errors that
name the field."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import DirectOptions
from typer.testing import CliRunner

from corpus.pipeline.build import build_corpus, pipeline_options
from corpus.pipeline.cli import (
    FlagError,
    argument_parser,
    config_from_args,
    split_arguments,
)
from corpus.pipeline.local_runner import available_cores, local_workers
from flows.cli import app
from schemas import BuildConfig

DOC = ("Apache Beam is a unified model for defining both batch and streaming data-parallel processing pipelines. "
       "Using one of the open source Beam SDKs, you build a program that defines the pipeline.")


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


def test_cli_uses_every_core_by_default_and_ends_with_a_summary_line(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text(DOC + "\n" + DOC + "\nshort\n")
    (tmp_path / "in" / "notes.md").write_text("not read\n")
    result = CliRunner().invoke(app, ["corpus", "build", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                                      "--dataset-name", "d", "--task-name", "t", "--min-length", "100"])
    assert result.exit_code == 0, result.output
    cores = available_cores()
    last = result.output.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"3 records in \(\+0 split pieces\), 1 written, 2 rejected \(quality 1, exact_dedupe 1\); "
        rf"{cores} workers?, 0\.0 MB in [0-9.]+ s = [0-9.]+ MB/s; 1 path not read \(unknown_type 1\); report: {tmp_path}/out/report\.md", last), last


def test_default_workers_are_the_available_cores_and_flags_override_them():
    def local(flags):
        options = pipeline_options(flags)
        direct = options.view_as(DirectOptions)
        return direct.direct_num_workers, direct.direct_running_mode, local_workers(options)

    cores = available_cores()
    assert local([]) == (cores, "multi_processing" if cores > 1 else "in_memory", cores)
    assert local(["--direct_num_workers=0"])[0] == cores
    assert local(["--direct_num_workers=1"]) == (1, "in_memory", 1)
    assert local(["--direct_num_workers", "3"]) == (3, "multi_processing", 3)
    assert local(["--direct_num_workers=3", "--direct_running_mode=in_memory"]) == (3, "in_memory", 1)
    assert local_workers(pipeline_options(["--runner=FlinkRunner"])) is None


@pytest.mark.parametrize(("flag", "suggestion"), [
    ("--direct_num_worker=2", "--direct_num_workers"), ("--max-lenght=300", "--max-length"),
    ("--dataset_name=d", "--dataset-name"), ("--out=x", "--output"), ("--qwertyuiop", None)])
def test_a_flag_nobody_knows_is_an_error_naming_the_nearest_flag(tmp_path, flag, suggestion):
    result = CliRunner().invoke(app, ["corpus", "build", "--input", str(tmp_path), "--output", str(tmp_path / "o"),
                                      "--dataset-name", "d", "--task-name", "t", flag])
    assert result.exit_code == 1
    assert f"unknown flag {flag.split('=')[0]}" in result.output
    assert (f"did you mean {suggestion}?" in result.output) if suggestion else "did you mean" not in result.output
    assert not (tmp_path / "o").exists()


def test_every_setting_can_be_set_on_the_command_line_with_cpm_bee_aliases():
    args, beam_args = argument_parser().parse_known_args(
        ["--input", "in", "--output", "o", "--dataset-name", "007", "--task-name", "t", "--min-length", "100",
         "--max-length=300", "--data-type", "json", "--set", "quality.max_top_ngram_chars.2=0.3",
         "--set", "near_dedupe.enabled=false", "--set", "read.split_bytes=1048576", "--set", "task_name=t2"])
    config = config_from_args(args)
    assert beam_args == []
    assert (config.split.min_length, config.split.max_length) == (100, 300)
    assert (config.read.txt_suffixes, config.read.json_suffixes) == ([], [""])
    assert config.quality.max_top_ngram_chars == {2: 0.3, 3: 0.18, 4: 0.16}
    assert (config.near_dedupe.enabled, config.read.split_bytes) == (False, 1 << 20)
    assert (config.dataset_name, config.task_name) == ("007", "t2")  # plain strings stay strings


def test_flag_values_after_a_space_stay_with_their_flag():
    own, beam = split_arguments(["--input", "in", "--direct_num_workers", "2", "--min-length", "100",
                                 "--save_main_session", "build.yaml", "--experiments", "a"])
    assert own == ["--input", "in", "--min-length", "100", "build.yaml"]
    assert beam == ["--direct_num_workers", "2", "--save_main_session", "--experiments", "a"]
    with pytest.raises(FlagError, match="--min-length: invalid int value: 'many'"):
        argument_parser().parse_args(["--min-length", "many"])


@pytest.mark.parametrize(("setting", "message"), [
    ("splt.max_length=3", "unknown setting 'splt.max_length'; did you mean split.max_length?"),
    ("split.max_length", "expected SECTION.FIELD=VALUE"),
    ("split.max_length=abc", "split.max_length: Input should be a valid integer")])
def test_a_bad_setting_is_an_error_naming_it(tmp_path, setting, message):
    result = CliRunner().invoke(app, ["corpus", "build", "--input", str(tmp_path), "--output", str(tmp_path / "o"),
                                      "--dataset-name", "d", "--task-name", "t", "--set", setting])
    assert result.exit_code == 1 and message in result.output, result.output


def test_bad_config_is_an_error_naming_the_field(tmp_path):
    config = tmp_path / "build.yaml"
    config.write_text("input: [in]\noutput: out\ndataset_name: d\ntask_name: t\nsplit: {min_length: 500, max_length: 10}\n")
    result = CliRunner().invoke(app, ["corpus", "build", str(config)])
    assert result.exit_code == 1
    assert "build.yaml" in result.output and "min_length" in result.output


def test_build_corpus_itself_refuses_a_flag_beam_does_not_know(tmp_path):
    config = BuildConfig(input=[str(tmp_path)], output=str(tmp_path / "o"), dataset_name="d", task_name="t")
    with pytest.raises(FlagError, match="unknown flag --direct_num_worker: .*did you mean --direct_num_workers"):
        build_corpus(config, ["--direct_num_worker=2"])  # the flow's runner_options take this path


def test_a_multi_worker_build_prints_no_beam_harness_lines_unless_verbose(tmp_path):
    # Worker processes write to the terminal directly (not through this process): a real command.
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text(DOC + "\n")
    (tmp_path / "in" / "b.txt").write_text(DOC + " Second file.\n")

    def build(output, *flags):
        command = [sys.executable, "-m", "flows.cli", "corpus", "build", "--input", str(tmp_path / "in"),
                   "--output", str(tmp_path / output), "--dataset-name", "d", "--task-name", "t",
                   "--direct_num_workers=2", "--direct_running_mode=multi_processing", *flags]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith(("WARNING:", "INFO:"))]

    assert build("quiet") == []
    assert any("Logging handler created" in line for line in build("verbose", "-v"))  # workers started via beam_worker
