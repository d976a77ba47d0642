"""`bee dataset ...` through typer's CliRunner: output, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from corpus.dataset import iter_records, read_meta
from flows.cli import app

runner = CliRunner()


def bee(*args: str):
    return runner.invoke(app, ["dataset", *map(str, args)], env={"COLUMNS": "200"})


def test_inspect_lists_files_lines_and_serializer(small_dataset: Path):
    result = bee("inspect", small_dataset)
    assert result.exit_code == 0, result.output
    assert "part-0" in result.output and "part-1" in result.output and "pickle" in result.output
    assert "30" in result.output  # total lines


def test_head_prints_records_as_json(small_dataset: Path):
    result = bee("head", small_dataset, "-n", "2")
    assert result.exit_code == 0, result.output
    decoder, text, records = json.JSONDecoder(), result.output.strip(), []
    while text:
        record, end = decoder.raw_decode(text)
        records.append(record)
        text = text[end:].strip()
    assert records == [{"i": 0}, {"i": 1}]


def test_verify_ok_and_corrupt(small_dataset: Path):
    assert bee("verify", small_dataset).exit_code == 0
    with open(small_dataset / "part-0", "r+b") as file:
        file.write(b"\x7f")
    result = bee("verify", small_dataset)
    assert result.exit_code == 1
    assert "error:" in result.output and "bad magic 0x7f" in result.output and "Traceback" not in result.output


def test_missing_dataset_is_a_one_line_error(tmp_path: Path):
    result = bee("inspect", tmp_path / "nope")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "meta.bin" in result.output


def test_shuffle_merge_mask_compact_convert(small_dataset: Path, tmp_path: Path):
    assert bee("shuffle", small_dataset, tmp_path / "s", "--seed", "3", "--name", "x.shuffle").exit_code == 0
    assert bee("merge", tmp_path / "s", small_dataset).exit_code == 0
    assert [i.file_name for i in read_meta(tmp_path / "s")] == ["x.shuffle", "part-0", "part-1"]
    assert bee("mask", tmp_path / "s", "x.shuffle").exit_code == 0
    assert sorted(r["i"] for r in iter_records(tmp_path / "s")) == list(range(30))
    assert bee("mask", tmp_path / "s", "x.shuffle", "--unmask").exit_code == 0
    (tmp_path / "s" / "part-0").unlink()
    result = bee("compact", tmp_path / "s")
    assert result.exit_code == 0 and "part-0" in result.output
    assert bee("convert", "--serializer", "json", tmp_path / "s", tmp_path / "j").exit_code == 0
    assert read_meta(tmp_path / "j")[0].extra_keys["serializer"] == "json"
    assert sorted(r["i"] for r in iter_records(tmp_path / "j")) == sorted(list(range(30)) + list(range(20, 30)))


def test_mask_of_an_unknown_file_fails_cleanly(small_dataset: Path):
    result = bee("mask", small_dataset, "nope")
    assert result.exit_code == 1 and "no data file named 'nope'" in result.output


def test_inspect_sniffs_the_serializer_of_cpm_bee_written_files(small_dataset: Path):
    lines = [json.loads(line) for line in (small_dataset / "meta.bin").read_text().splitlines()]
    for line in lines:  # as CPM-Bee writes them: no extra keys
        del line["serializer"], line["checksum"], line["format_version"]
    (small_dataset / "meta.bin").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (small_dataset / "part-1").unlink()
    result = bee("inspect", small_dataset)
    assert result.exit_code == 0, result.output
    assert "pickle (sniffed)" in result.output and "(file missing)" in result.output
