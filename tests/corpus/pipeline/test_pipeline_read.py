"""Stage 1, read: CPM-Bee's txt line rules, json objects, compressed inputs, and every
unreadable thing as a reject with its place."""

from __future__ import annotations

import gzip
import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corpus.pipeline import read as read_module
from corpus.pipeline.file_chain import run_stages
from corpus.pipeline.read import (
    ReadFileLines,
    SkippedPath,
    TruncatedInput,
    list_input_files,
    read_lines,
    txt_line_to_text,
)
from schemas import Record, Reject
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
    assert skipped == [SkippedPath(".hidden", "hidden"), SkippedPath("c/readme.md", "unknown_type")]


def test_every_path_not_read_is_listed_with_its_reason(tmp_path):
    root = tmp_path / "in"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.txt").write_text("x\n")
    (root / "linked").symlink_to(root / "real")  # a symlinked folder is read (default: follow)
    (root / "real" / "loop").symlink_to(root)  # a link back up: read once, not forever
    (root / "gone.txt").symlink_to(root / "missing.txt")
    os.mkfifo(root / "pipe.txt")
    (root / "out").mkdir()  # the build's own output inside the input root
    (root / "out" / "b.txt").write_text("x\n")
    (root / "datasets.json").write_text("{}\n")  # its manifest too
    own = [str(root / "out"), str(root / "datasets.json")]
    files, skipped = list_input_files([str(root)], ReadConfig(), exclude=own)
    assert [f.source_path for f in files] == ["linked/a.txt", "real/a.txt"]
    assert skipped == [SkippedPath("datasets.json", "build_output"),
                       SkippedPath("gone.txt", "broken_symlink"), SkippedPath("linked/loop", "symlink_loop"),
                       SkippedPath("out", "build_output"), SkippedPath("pipe.txt", "not_a_file"),
                       SkippedPath("real/loop", "symlink_loop")]
    files, skipped = list_input_files([str(root)], ReadConfig(follow_symlinks=False), exclude=own)
    assert [f.source_path for f in files] == ["real/a.txt"]
    assert SkippedPath("linked", "symlink_not_followed") in skipped


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_files_and_folders_are_listed_as_skipped(tmp_path):
    (tmp_path / "closed").mkdir()
    (tmp_path / "closed" / "a.txt").write_text("x\n")
    (tmp_path / "secret.txt").write_text("x\n")
    (tmp_path / "closed").chmod(0)
    (tmp_path / "secret.txt").chmod(0)
    try:
        files, skipped = list_input_files([str(tmp_path)], ReadConfig())
    finally:
        (tmp_path / "closed").chmod(0o755)
    assert files == []
    assert skipped == [SkippedPath("closed", "unreadable"), SkippedPath("secret.txt", "unreadable")]


def _lines(path):
    files, _ = list_input_files([str(path.parent)], ReadConfig())
    return [(n, raw) for f in files if f.source_path == path.name for n, raw, _ in read_lines(f, 1000)]


def test_bom_is_dropped_and_cr_crlf_lf_all_end_lines(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"t": 1}\r{"t": 2}\r\n{"t": 3}\n{"t": 4}\r')
    assert _lines(path) == [(1, b'{"t": 1}'), (2, b'{"t": 2}'), (3, b'{"t": 3}'), (4, b'{"t": 4}')]
    bom_only_once = tmp_path / "b.txt"
    bom_only_once.write_bytes(b"\xef\xbb\xbfone\n\xef\xbb\xbftwo\n")
    assert _lines(bom_only_once) == [(1, b"one"), (2, b"\xef\xbb\xbftwo")]


@given(st.lists(st.sampled_from([b"a", b"bb", b"\r", b"\n", b"\r\n", b"x" * 7]), max_size=40), st.integers(1, 9))
def test_lines_are_the_same_whatever_the_chunk_size(tmp_path_factory, pieces, chunk):
    data = b"".join(pieces)
    path = tmp_path_factory.mktemp("chunks") / "a.txt"
    path.write_bytes(data)
    files, _ = list_input_files([str(path.parent)], ReadConfig())
    expected = [line for line in data.splitlines()]
    with mock_chunk_bytes(chunk):
        got = [(n, raw, long) for n, raw, long in read_lines(files[0], 5)]
    assert [n for n, _, _ in got] == list(range(1, len(expected) + 1))
    assert [(raw, long) for _, raw, long in got] == [(line[:5], len(line) > 5) for line in expected]


class mock_chunk_bytes:
    """Read files in chunks of `n` bytes, so line ends fall across chunk boundaries."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.saved = read_module.CHUNK_BYTES
        read_module.CHUNK_BYTES = self.n

    def __exit__(self, *exc):
        read_module.CHUNK_BYTES = self.saved


def test_truncated_gz_keeps_every_line_before_the_cut(tmp_path):
    lines = [f"line number {i} of a gzip file that is cut off near its end" for i in range(60_000)]
    (tmp_path / "cut.txt.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode())[:-100])
    (tmp_path / "whole.txt.gz").write_bytes(gzip.compress(b"a\n") + gzip.compress(b"b\n") + b"\0" * 8)
    files, _ = list_input_files([str(tmp_path)], ReadConfig())
    read = []
    with pytest.raises(TruncatedInput):
        for number, raw, _ in read_lines(files[0], 1000):
            read.append(raw.decode())
    assert len(read) > 59_000 and read == lines[: len(read)]  # the lines of the last 1 MB chunk too
    assert [raw for _, raw, _ in read_lines(files[1], 1000)] == [b"a", b"b"]  # members, zero padding


def test_read_stage_outputs_records_rejects_and_file_counts(tmp_path):
    (tmp_path / "t.txt").write_text("hello<n>world\n\n", encoding="utf-8")
    lines = [json.dumps({"a": "b", "<ans>": "c"}), "{oops", '"a string"']
    (tmp_path / "j.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    files, _ = list_input_files([str(tmp_path)], ReadConfig())
    reader = ReadFileLines(ReadConfig())
    reader.setup()
    out = run_stages([reader], files)
    assert sorted((r.source_path, r.source_line, r.kind, r.text) for r in out.records) == sorted([
        ("t.txt", 1, "text", "hello\nworld"), ("j.jsonl.gz", 1, "json", "b\nc")])
    assert sorted((r.source_path, r.source_line, r.reason) for r in out.rejects) == sorted([
        ("t.txt", 2, "empty_line"), ("j.jsonl.gz", 2, "broken_json"), ("j.jsonl.gz", 3, "not_an_object")])
    assert sorted((file.source_path, run_stages([reader], [file]).units) for file in files) == sorted(
        [("t.txt", 2), ("j.jsonl.gz", 3)])


def test_a_bom_before_the_first_json_line_is_not_broken_json(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps({"q": "x", "<ans>": "y"}).encode() + b"\r\n")
    (tmp_path / "b.txt").write_bytes(b"\xef\xbb\xbfone\rtwo\r")
    files, _ = list_input_files([str(tmp_path)], ReadConfig())
    reader = ReadFileLines(ReadConfig())
    reader.setup()
    out = [item for file in files for item in reader.outputs(file)]
    assert [(r.source_path, r.source_line, r.text) for r in out if isinstance(r, Record)] == [
        ("a.jsonl", 1, "x\ny"), ("b.txt", 1, "one"), ("b.txt", 2, "two")]
    assert not [item for item in out if isinstance(item, Reject)]


def _read_json_lines(tmp_path, objects: list, config: ReadConfig, keep_without_ans: bool = False) -> list:
    from corpus.pipeline.read import ReadFileLines

    (tmp_path / "in").mkdir(exist_ok=True)
    (tmp_path / "in" / "a.jsonl").write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    files, _ = list_input_files([str(tmp_path / "in")], config)
    reader = ReadFileLines(config, keep_records_without_ans=keep_without_ans)
    reader.setup()
    return list(reader.outputs(files[0]))


def test_a_json_record_with_a_text_field_is_a_document_with_its_other_fields_as_metadata(tmp_path):
    config = ReadConfig()
    doc, content, sample, other, not_string, clash = _read_json_lines(tmp_path, [
        {"id": 7, "text": "words", "source": "web"},
        {"content": "from content", "url": "u"},
        {"text": "a sample's input", "<ans>": "x"},
        {"question": "q"},
        {"text": None},
        {"content": "c", "text": 3},
    ], ReadConfig(text_fields=["content", "text"]))
    assert (doc.kind, doc.text, doc.metadata) == ("text", "words", {"id": 7, "source": "web"})
    assert (content.kind, content.text, content.metadata) == ("text", "from content", {"url": "u"})
    assert sample.kind == "json" and sample.data == {"text": "a sample's input", "<ans>": "x"}
    assert other.reason == "not_a_sample" and "read.text_fields" in other.detail and "transforms" in other.detail
    assert not_string.reason == "text_not_a_string"
    assert clash.reason == "text_field_clash"
    assert config.text_fields == ["text", "content"]


def test_records_without_text_or_ans_are_kept_when_the_build_declares_transforms(tmp_path):
    from schemas import BuildConfig

    base = {"input": ["in"], "output": "out", "dataset_name": "d", "task_name": "t"}
    assert not BuildConfig(**base).keeps_records_without_ans
    assert BuildConfig(**base, transforms="transform.py").keeps_records_without_ans
    assert not BuildConfig(**base, transforms="transform.py", escape={"require_ans": True}).keeps_records_without_ans
    assert BuildConfig(**base, escape={"require_ans": False}).keeps_records_without_ans
    (kept,) = _read_json_lines(tmp_path, [{"question": "q", "id": 3}], ReadConfig(), keep_without_ans=True)
    assert kept.kind == "json" and kept.data == {"question": "q", "id": 3}
