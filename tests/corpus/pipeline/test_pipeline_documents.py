"""JSON(L) documents, CPM-Bee-escaped samples and document-level dedupe, end to end:
`{"text": ..., "id": 7}` records take the txt path (clean, quality, split, dedupe) and keep their
other fields; escaped structured samples are stored as given; a document and its copy match
however they are split."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from corpus.dataset import iter_records, read_meta
from corpus.manifest import read_manifest
from corpus.pipeline.build import build_corpus
from corpus.pipeline.parquet_shards import RECORDS_SUFFIX, REJECTS_SUFFIX, list_shards, read_records, read_rejects
from schemas import BuildConfig

JUNK = "#### $$$ %%% " * 12


def paragraph(seed: int, words: int = 70) -> str:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join("".join(rng.choice(letters) for _ in range(rng.randrange(3, 9))) for _ in range(words)) + "."


LONG = "\n\n".join(f"Section {i}. {paragraph(i)}" for i in range(6))  # ~3 000 chars: split in pieces


def near(text: str) -> str:
    """A copy with a handful of characters changed (character 5-gram Jaccard about 0.95)."""
    chars = list(text)
    for index in range(100, len(chars), 400):
        chars[index] = "Q"
    return "".join(chars)


def records(output: Path) -> list:
    return [r for _, url in list_shards(str(output / "arrow"), RECORDS_SUFFIX) for r in read_records(url)]


def rejects(output: Path) -> list:
    return [r for _, url in list_shards(str(output / "rejects"), REJECTS_SUFFIX) for r in read_rejects(url)]


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def documents_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    write_lines(root / "raw" / "a.jsonl", [
        json.dumps({"text": LONG, "id": 7, "source": "web"}),
        json.dumps({"content": JUNK, "id": 8}),
        json.dumps({"question": "no text field, no <ans>"}),
        json.dumps({"text": "x < y, said the note. " + paragraph(40), "id": 9, "meta": {"tags": ["a", 1]}}),
    ])
    write_lines(root / "raw" / "b.txt", [
        JUNK,
        LONG.replace("\n", "<n>"),          # the same document as a.jsonl:1: every piece a duplicate
        near(LONG).replace("\n", "<n>"),    # a near copy: every piece a duplicate
        paragraph(50),
    ])
    config = BuildConfig(input=[str(root / "raw")], output=str(root / "out" / "ds"), dataset_name="docs",
                         task_name="t", split={"min_length": 50, "max_length": 700})
    return config, build_corpus(config, [], log=lambda line: None)


def test_jsonl_text_records_are_split_like_txt_and_keep_their_fields(documents_build):
    _, result = documents_build
    pieces = [r for r in records(result.output) if (r.source_path, r.source_line) == ("a.jsonl", 1)]
    assert len(pieces) >= 4 and [p.piece for p in pieces] == list(range(len(pieces)))
    assert "\n\n".join(p.text for p in pieces) == LONG
    assert all(p.payload == {"text": p.text, "id": 7, "source": "web"} for p in pieces)
    stored = list(iter_records(result.dataset_path))
    assert stored[: len(pieces)] == [p.payload for p in pieces]
    escaped = next(r for r in records(result.output) if (r.source_path, r.source_line) == ("a.jsonl", 4))
    assert escaped.payload["text"].startswith("x << y") and escaped.payload["meta"] == {"tags": ["a", 1]}


def test_a_document_and_its_copies_are_deduped_whole_however_split(documents_build):
    _, result = documents_build
    by_line: dict[tuple, list] = {}
    for reject in rejects(result.output):
        by_line.setdefault((reject.source_path, reject.source_line), []).append(reject)
    kept_pieces = sum(1 for r in records(result.output) if (r.source_path, r.source_line) == ("a.jsonl", 1))
    exact, near_copy = by_line[("b.txt", 2)], by_line[("b.txt", 3)]
    assert len(exact) == kept_pieces and {r.reason for r in exact} == {"exact_duplicate"}
    assert {r.duplicate_of for r in exact} == {"a.jsonl:1"}
    assert len(near_copy) >= 4 and {r.reason for r in near_copy} == {"near_duplicate"}
    assert not any(r.source_path == "b.txt" and r.source_line in (2, 3) for r in records(result.output))
    assert result.units_in + result.extra_pieces == result.written + result.rejected


def test_the_quality_filter_judges_json_documents_as_it_judges_txt(documents_build):
    _, result = documents_build
    by_line = {(r.source_path, r.source_line): r for r in rejects(result.output)}
    from_json, from_txt = by_line[("a.jsonl", 2)], by_line[("b.txt", 1)]
    assert from_json.stage == from_txt.stage == "quality"
    assert (from_json.reason, from_json.score) == (from_txt.reason, from_txt.score)


def test_a_record_with_neither_text_nor_ans_names_the_settings_that_would_take_it(documents_build):
    _, result = documents_build
    reject = next(r for r in rejects(result.output) if (r.source_path, r.source_line) == ("a.jsonl", 3))
    assert reject.reason == "not_a_sample"
    assert "read.text_fields" in reject.detail and "transforms" in reject.detail


def test_transform_mode_keeps_records_for_transforms_and_stores_everything_unescaped(tmp_path):
    write_lines(tmp_path / "raw" / "a.jsonl", [
        json.dumps({"question": "kept for the transforms", "id": 1}),
        json.dumps({"text": "x < y " + paragraph(60), "id": 2}),
        json.dumps({"input": "1 << 2", "<ans>": "yes"}),
    ])
    (tmp_path / "transform.py").write_text("def transform(data, num_sample, r):\n    return data\n")
    config = BuildConfig(input=[str(tmp_path / "raw")], output=str(tmp_path / "out" / "ds"), dataset_name="d",
                         task_name="t", transforms=str(tmp_path / "transform.py"), escape={"documents": "transform"})
    result = build_corpus(config, [], log=lambda line: None)
    stored = list(iter_records(result.dataset_path))
    assert stored[0] == {"question": "kept for the transforms", "id": 1}
    assert stored[1]["text"].startswith("x < y ") and stored[1]["id"] == 2
    assert stored[2] == {"input": "1 < 2", "<ans>": "yes"}
    assert read_meta(result.dataset_path)[0].extra_keys["escaped"] is False
    assert next(iter(read_manifest(result.manifest_path))).escaped is False


def test_every_ccpm_sample_is_stored_equal_to_its_input_object(shared_cpm_bee, tmp_path):
    """CPM-Bee's own escaped format is accepted unchanged: nothing escaped twice, nothing dropped."""
    lines = (shared_cpm_bee / "ccpm_eval.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "ccpm.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = BuildConfig(input=[str(tmp_path / "raw")], output=str(tmp_path / "out" / "ccpm"), dataset_name="ccpm",
                         task_name="eval")
    result = build_corpus(config, [], log=lambda line: None)
    assert list(iter_records(result.dataset_path)) == [json.loads(line) for line in lines]
