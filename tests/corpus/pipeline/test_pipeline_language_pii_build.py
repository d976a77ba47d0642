"""End-to-end: a build with language identification and PII redaction labels every written
record, rejects the German document, redacts PII in place, and reports both; `in = written +
rejected` still holds."""

from __future__ import annotations

import json

from corpus.dataset import iter_records
from corpus.pipeline.build import build_corpus
from schemas import BuildConfig
from tests.corpus.pipeline.conftest import en_doc, zh_doc
from tests.corpus.pipeline.test_pipeline_build import all_records, all_rejects

GERMAN = ("Die Verarbeitung natürlicher Sprache ist ein wichtiges Teilgebiet der künstlichen Intelligenz. "
          "Sie beschäftigt sich mit der Frage, wie Computer menschliche Sprache verstehen und erzeugen können, "
          "und verbindet dabei Methoden der Linguistik mit denen der Informatik und der Statistik.")


def test_language_and_pii_stages_in_a_build(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = [en_doc(1), zh_doc(2) + "联系电话13812345678，邮箱wang@example.cn。", GERMAN,
             en_doc(3) + " Mail alice@example.com or call +44 20 7946 0958.",
             "我们用 PyTorch 的 DataLoader 加载数据，再用 DeepSpeed ZeRO-3 训练模型。" + zh_doc(4)]
    (raw / "docs.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = BuildConfig(input=[str(raw)], output=str(tmp_path / "ds"), dataset_name="lp", task_name="test",
                         split={"min_length": 50, "max_length": 1500}, pii={"enabled": True})
    result = build_corpus(config, [], log=lambda line: None)
    assert result.units_in + result.extra_pieces == result.written + result.rejected

    records = {r.source_line: r for r in all_records(result.output)}
    assert {line: r.language for line, r in records.items()} == {1: "en", 2: "zh", 4: "en", 5: "zh"}
    assert all(0 < r.language_score <= 1 for r in records.values())
    assert records[2].pii == {"email": 1, "phone": 1} and "[PHONE]" in records[2].text and "wang@" not in records[2].text
    assert records[4].pii == {"email": 1, "phone": 1}
    rejects = all_rejects(result.output)
    assert [(r.source_line, r.stage, r.reason) for r in rejects] == [(3, "language", "wrong_language")]
    assert rejects[0].detail.startswith("de ")

    texts = [json.dumps(r, ensure_ascii=False) for r in iter_records(result.dataset_path)]
    assert len(texts) == 4 and sum(t.count("[EMAIL]") for t in texts) == 2
    assert not any("13812345678" in t or "alice@example.com" in t for t in texts)

    report = json.loads((result.output / "report.json").read_text())
    assert report["languages"]["de"] == {"rejected": 1}
    assert report["languages"]["en"]["written"] == 2 and report["languages"]["zh"]["written"] == 2
    assert report["pii"] == {"email": {"redacted": 2}, "phone": {"redacted": 2}}
    markdown = (result.output / "report.md").read_text()
    assert "## Languages" in markdown and "## PII found" in markdown
    page = (result.output / "report.html").read_text()
    assert "<h2>Languages" in page and "<h2>PII found" in page
