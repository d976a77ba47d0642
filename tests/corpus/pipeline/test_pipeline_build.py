"""End-to-end: a tiny corpus with every kind of trouble becomes a dataset, a rejects table, a
report and a manifest entry; nothing is lost; reruns are no-ops; interrupted builds resume."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from corpus.dataset import iter_records, read_meta, verify_dataset
from corpus.manifest import read_manifest
from corpus.pipeline.build import build_corpus
from corpus.pipeline.parquet_shards import (
    RECORDS_SUFFIX,
    REJECTS_SUFFIX,
    list_shards,
    read_records,
    read_rejects,
)
from schemas import BuildConfig
from tests.corpus.pipeline.conftest import en_doc


def all_rejects(output: Path):
    return [r for _, url in list_shards(str(output / "rejects"), REJECTS_SUFFIX) for r in read_rejects(url)]


def all_records(output: Path):
    return [r for _, url in list_shards(str(output / "arrow"), RECORDS_SUFFIX) for r in read_records(url)]


def dataset_records(path: Path) -> list:
    return list(iter_records(path))


def test_records_in_equals_written_plus_rejected(built):
    _, result = built
    assert result.units_in + result.extra_pieces == result.written + result.rejected
    assert result.written == result.nlines > 0
    report = json.loads((result.output / "report.json").read_text())
    assert report["balanced"] is True


def test_every_kind_of_trouble_is_a_reject_with_its_reason_and_place(built):
    _, result = built
    reasons = Counter((r.source_path, r.reason) for r in all_rejects(result.output))
    assert reasons[("txt/en.txt", "exact_duplicate")] == 2  # line 7, and line 4 (also json/qa.jsonl:10)
    assert reasons[("txt/zh.txt.gz", "exact_duplicate")] == 1
    assert reasons[("txt/en.txt", "near_duplicate")] == 1
    assert reasons[("txt/en.txt", "empty_line")] == 1
    assert reasons[("txt/en.txt", "too_few_tokens")] == 2  # the junk line, and "short line" (judged before split)
    assert reasons[("txt/bad-bytes.txt", "invalid_utf8")] == 1
    assert reasons[("txt/cut.txt.zst", "truncated_file")] == 1
    assert reasons[("txt/empty.txt.gz", "empty_file")] == 1
    assert reasons[("json/qa.jsonl", "broken_json")] == 1
    assert reasons[("json/qa.jsonl", "not_an_object")] == 1
    assert reasons[("json/qa.jsonl", "not_a_sample")] == 1
    assert reasons[("json/qa.jsonl", "non_string_value")] == 1
    assert reasons[("json/qa.jsonl", "exact_duplicate")] == 1
    assert reasons[("json/qa.jsonl", "unescaped_lt")] == 1
    junk = [r for r in all_rejects(result.output) if r.source_line == 12 and r.source_path == "txt/en.txt"]
    assert junk and junk[0].stage == "quality" and junk[0].score is not None and junk[0].threshold is not None


def test_duplicates_name_the_earliest_copy(built):
    _, result = built
    rejects = {(r.source_path, r.source_line): r for r in all_rejects(result.output)}
    assert rejects[("txt/en.txt", 7)].duplicate_of == "txt/en.txt:1"
    assert rejects[("txt/en.txt", 8)].duplicate_of == "txt/en.txt:2"
    assert rejects[("txt/zh.txt.gz", 5)].duplicate_of == "txt/zh.txt.gz:1"
    # the same document as a JSON record (ids differ) and as a txt line: json/ sorts first
    assert rejects[("txt/en.txt", 4)].reason == "exact_duplicate"
    assert rejects[("txt/en.txt", 4)].duplicate_of == "json/qa.jsonl:10"
    kept = {(r.source_path, r.source_line): r for r in all_records(result.output)}
    assert kept[("txt/en.txt", 2)].cluster_size == 2


def test_truncated_file_keeps_the_lines_before_the_cut(built):
    _, result = built
    cut = [r for r in all_records(result.output) if r.source_path == "txt/cut.txt.zst"]
    truncated = [r for r in all_rejects(result.output) if r.reason == "truncated_file"]
    assert len(cut) > 100  # whole zstd blocks before the cut are read
    assert truncated[0].source_line == max(r.source_line for r in cut) + 1


def test_long_line_is_split_into_pieces_sharing_its_provenance(built):
    config, result = built
    pieces = sorted((r for r in all_records(result.output) if r.source_line == 11 and r.source_path == "txt/en.txt"),
                    key=lambda r: r.piece)
    assert len(pieces) >= 3
    assert [p.piece for p in pieces] == list(range(len(pieces)))
    assert all(config.split.min_length <= len(p.text) <= config.split.max_length for p in pieces)


def test_dataset_holds_escaped_records_in_input_order(built):
    _, result = built
    records = all_records(result.output)
    assert [r.position for r in records] == sorted(r.position for r in records)
    infos = read_meta(result.dataset_path)
    assert infos[0].extra_keys["escaped"] is True
    verify_dataset(result.dataset_path)
    payloads = dataset_records(result.dataset_path)
    assert payloads == [r.payload for r in records]
    texts = [p["text"] for p in payloads if "text" in p]
    assert any("a <<b> tag and x << y" in t for t in texts)
    structured = [p for p in payloads if "<ans>" in p]
    assert {"input": "1 << 2 <mask_0>", "question": "比较", "<ans>": {"<mask_0>": "是"}} in structured
    assert any(p.get("<ans>") == "<option_1>" for p in structured)


def test_manifest_entry_describes_the_dataset(built):
    config, result = built
    entry = next(e for e in read_manifest(result.manifest_path) if e.identity == "test.tiny")
    assert entry.escaped is True and entry.nlines == result.nlines and entry.nbytes == result.nbytes
    assert entry.fingerprints.content.startswith("sha256:")
    assert entry.provenance.model_extra["build_config_hash"] == config.fingerprint()
    assert (result.manifest_path.parent / entry.path).resolve() == result.dataset_path.resolve()


def test_report_has_stats_and_plots(built):
    _, result = built
    report = json.loads((result.output / "report.json").read_text())
    assert report["rejects"]["read"]["invalid_utf8"] == 1
    assert report["cluster_sizes"] == {"2": 1}
    assert report["skipped_files"] == [{"path": "json/notes.md", "reason": "unknown_type"}]
    assert "`json/notes.md` | unknown_type" in (result.output / "report.md").read_text()
    for plot in ("length_before", "length_after", "drops", "cluster_sizes"):
        assert (result.output / "plots" / f"{plot}.svg").read_text().startswith("<svg")
    assert "records in" in (result.output / "report.md").read_text()


def test_rerun_of_an_unchanged_build_is_a_no_op(built):
    config, result = built
    before = {p: p.stat().st_mtime_ns for p in result.output.rglob("*")}
    again = build_corpus(config, [], log=lambda line: None)
    assert again.up_to_date
    assert {p: p.stat().st_mtime_ns for p in result.output.rglob("*")} == before


def test_interrupted_build_resumes_finished_files_and_gives_the_same_bytes(built, tmp_path):
    config, result = built
    # Simulate an interruption after the per-file stages: checkpoints exist, the output does not.
    work = tmp_path / "work"
    shutil.copytree(config.resolved_work_dir, work)
    redo = "txt%2Fen.txt.done.json"
    (work / "prepared" / redo).unlink()  # this file was in flight: it has no marker
    again = config.model_copy(update={"output": str(tmp_path / "ds"), "work_dir": str(work),
                                      "manifest": str(tmp_path / "datasets.json")})
    logs: list[str] = []
    second = build_corpus(again, [], log=logs.append)
    assert second.resumed_files == 5 and any("1 to read, 5 resumed" in line for line in logs)
    name = read_meta(result.dataset_path)[0].file_name
    assert (second.dataset_path / name).read_bytes() == (result.dataset_path / name).read_bytes()


@pytest.mark.integration
def test_output_is_byte_identical_with_one_and_two_workers(raw_corpus, tmp_path):
    """With every stage on: PII redaction and decontamination (its side input) included."""
    eval_set = tmp_path / "eval.jsonl"
    eval_set.write_text(json.dumps({"question": en_doc(3)[-200:]}) + "\n", encoding="utf-8")
    outputs = []
    for args in (["--direct_num_workers=1", "--direct_running_mode=in_memory"],
                 ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]):
        out = tmp_path / args[0][-1]
        config = BuildConfig(input=[str(raw_corpus)], output=str(out / "ds"), dataset_name="tiny", task_name="test",
                             split={"min_length": 50, "max_length": 1500}, pii={"enabled": True},
                             decontamination={"eval_sets": [str(eval_set)]})
        outputs.append(build_corpus(config, args, log=lambda line: None))
    # en_doc(3) is txt/en.txt:4 and json/qa.jsonl:10; dedupe keeps the earliest, decontamination rejects it
    assert [(r.source_path, r.source_line) for r in all_rejects(outputs[0].output)
            if r.reason == "contaminated"] == [("json/qa.jsonl", 10)]
    rejects = [sorted((p.name, p.read_bytes()) for p in (o.output / "rejects").iterdir()) for o in outputs]
    assert rejects[0] == rejects[1]
    first, second = (sorted((p.name, p.read_bytes()) for p in o.dataset_path.iterdir() if not p.name.startswith("."))
                     for o in outputs)
    assert first == second
    shards = [sorted((p.name, p.read_bytes()) for p in (o.output / "arrow").iterdir()) for o in outputs]
    assert shards[0] == shards[1]


def _files(folder: Path) -> list[tuple[str, bytes]]:
    return sorted((str(p.relative_to(folder)), p.read_bytes()) for p in folder.rglob("*")
                  if p.is_file() and not p.name.startswith("."))


def test_big_files_read_in_byte_ranges_give_the_same_bytes(built, tmp_path):
    config, result = built
    ranged = config.model_copy(update={
        "output": str(tmp_path / "ds"), "work_dir": None, "manifest": str(tmp_path / "datasets.json"),
        "read": config.read.model_copy(update={"split_bytes": 1024})})
    logs: list[str] = []
    second = build_corpus(ranged, ["--direct_num_workers=1"], log=logs.append)
    assert any("input files (big files cut into" in line for line in logs), logs
    assert len(list((tmp_path / "ds.work" / "prepared").glob("txt%2Fen.txt%23*.done.json"))) > 3
    for folder in ("data", "arrow", "rejects"):  # same records, rejects and source_line provenance
        assert _files(second.output / folder) == _files(result.output / folder)


def _big_corpus(path: Path, megabytes: int) -> None:
    """About `megabytes` MB of distinct English-like lines, some exact copies far apart, some too short."""
    import random

    rng = random.Random(7)
    words = ["".join(rng.choice("bcdfglmnprstvw") + rng.choice("aeiou") for _ in range(rng.randrange(1, 5)))
             for _ in range(5000)]
    lines: list[str] = []
    size = 0
    while size < megabytes * 1_000_000:
        n = len(lines)
        if n % 997 == 500:
            line = lines[n - 400]  # an exact duplicate, often in another byte range
        elif n % 101 == 0:
            line = "too short"
        else:
            line = f"Line {n}. " + " ".join(rng.choices(words, k=rng.randrange(60, 260))) + "."
        lines.append(line)
        size += len(line) + 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.integration
def test_one_50_mb_file_read_by_two_workers_gives_the_dataset_of_one_worker(tmp_path):
    (tmp_path / "in").mkdir()
    _big_corpus(tmp_path / "in" / "big.txt", 50)
    outputs = []
    for name, split_bytes, flags in (("one", 1 << 30, ["--direct_num_workers=1"]), ("two", 8 << 20, ["--direct_num_workers=2"])):
        config = BuildConfig(input=[str(tmp_path / "in")], output=str(tmp_path / name / "ds"), dataset_name="big",
                             task_name="test", read={"split_bytes": split_bytes}, near_dedupe={"enabled": False})
        logs: list[str] = []
        outputs.append(build_corpus(config, flags, log=logs.append))
        assert ("cut into 6 ranges" in " ".join(logs)) == (name == "two"), logs
    one, two = outputs
    assert two.workers == 2 and one.workers == 1
    assert one.written > 30_000 and one.rejected_by_stage["exact_dedupe"] > 30
    for folder in ("data", "arrow", "rejects"):
        assert _files(one.output / folder) == _files(two.output / folder)
