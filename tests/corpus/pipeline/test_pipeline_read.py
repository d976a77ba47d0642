"""Stage 1, read: CPM-Bee's txt line rules, json objects, compressed inputs, and every
unreadable thing as a reject with its place."""

from __future__ import annotations

import gzip
import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given
from hypothesis import strategies as st

from corpus.pipeline.read import ReadInputFiles, list_input_files, read_lines, txt_line_to_text
from schemas.build_config import ReadConfig


def test_txt_line_rules_follow_cpm_bee():
    assert txt_line_to_text("  first<n>second\\nthird\\r\\nfourth  ") == "first\nsecond\nthird\nfourth"
    assert txt_line_to_text("para one<n> \t <n>  <n>para two") == "para one\n\npara two"
    assert txt_line_to_text("   ") == ""


@given(st.text(alphabet="ab <n>\\rt\t", max_size=60))
def test_txt_line_never_keeps_an_escaped_newline_or_blank_run(line):
    text = txt_line_to_text(line)
    assert "<n>" not in text and "\n \n" not in text and text == text.strip()


def test_giant_line_is_reported_without_holding_it(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"short\n" + b"x" * 5_000_000 + b"\nlast\n")
    files, _ = list_input_files([str(tmp_path)], ReadConfig())
    lines = [(n, len(raw), too_long) for n, raw, too_long in read_lines(files[0], max_line_bytes=1000)]
    assert lines == [(1, 5, False), (2, 1000, True), (3, 4, False)]


def test_listing_is_recursive_sorted_and_skips_unknown_and_hidden_files(tmp_path):
    for name in ("b/x.txt", "a/y.jsonl.gz", "a/z.json.zst", "c/readme.md", ".hidden/h.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    files, skipped = list_input_files([str(tmp_path)], ReadConfig())
    assert [(f.source_path, f.format, f.compression) for f in files] == [
        ("a/y.jsonl.gz", "json", "gzip"), ("a/z.json.zst", "json", "zstd"), ("b/x.txt", "txt", None)]
    assert skipped == ["c/readme.md"]


def test_read_stage_outputs_records_rejects_and_file_counts(tmp_path):
    (tmp_path / "t.txt").write_text("hello<n>world\n\n", encoding="utf-8")
    lines = [json.dumps({"a": "b", "<ans>": "c"}), "{oops", '"a string"']
    (tmp_path / "j.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    files, _ = list_input_files([str(tmp_path)], ReadConfig())
    with TestPipeline() as p:
        out = p | beam.Create(files) | ReadInputFiles(ReadConfig())
        assert_that(out.kept | "K" >> beam.Map(lambda r: (r.source_path, r.source_line, r.kind, r.text)), equal_to([
            ("t.txt", 1, "text", "hello\nworld"), ("j.jsonl.gz", 1, "json", "b\nc")]), label="kept")
        assert_that(out.rejected | "R" >> beam.Map(lambda r: (r.source_path, r.source_line, r.reason)), equal_to([
            ("t.txt", 2, "empty_line"), ("j.jsonl.gz", 2, "broken_json"), ("j.jsonl.gz", 3, "not_an_object")]),
            label="rejected")
        assert_that(out.files, equal_to([("t.txt", 2), ("j.jsonl.gz", 3)]), label="files")
