"""Stage 4, quality filter: good prose in either language passes; junk fails with the filter
that caught it, its score and its bound."""

from __future__ import annotations

from corpus.pipeline.file_chain import run_stages
from corpus.pipeline.quality import QualityFilter, build_checks, judge
from schemas import Record
from schemas.build_config import QualityConfig

ENGLISH = ("Apache Beam is a unified model for defining both batch and streaming data-parallel processing "
           "pipelines. Using one of the open source Beam SDKs, you build a program that defines the pipeline; "
           "the pipeline is then executed by one of Beam's supported distributed processing back-ends.")
CHINESE = ("自然语言处理是人工智能领域的一个重要方向，它研究如何让计算机理解和生成人类语言。"
           "近年来，大规模预训练模型取得了显著进展，在翻译、问答和写作等任务上表现出色。")


def verdict(text: str, **config) -> tuple[bool, str | None]:
    quality = QualityConfig(**config)
    keep, reason, _, _ = judge(text, quality, build_checks(quality))
    return keep, reason


def test_good_english_and_chinese_and_mixed_prose_pass():
    assert verdict(ENGLISH) == (True, None)
    assert verdict(CHINESE) == (True, None)
    assert verdict(CHINESE + " Transformer 模型 " + ENGLISH) == (True, None)


def test_junk_fails_with_the_filter_that_caught_it():
    assert verdict("BUY NOW " * 40) == (False, "top_2gram_repetition")
    assert verdict("买买买买买" * 40) == (False, "top_2gram_repetition")
    assert verdict("abcdef 1234 " * 20) == (False, "too_many_digits")
    assert verdict("Привет мир, это текст на другом языке, который мы не собираем. " * 3) == (False, "foreign_script")
    assert verdict("\n".join(f"- item {i} of the list here" for i in range(30))) == (False, "too_many_bullet_lines")
    assert verdict("too few words") == (False, "too_few_tokens")


def test_a_filter_set_to_null_is_off():
    assert verdict("too few words", min_tokens=None) == (True, None)


def test_quality_stage_keeps_scores_and_rejects_with_score_and_threshold():
    records = [Record(source_path="a.txt", source_line=1, kind="text", text=ENGLISH),
               Record(source_path="a.txt", source_line=2, kind="text", text="spam spam " * 50),
               Record(source_path="q.jsonl", source_line=1, kind="json", text="x", data={"<ans>": "x"})]
    quality = QualityFilter(QualityConfig())
    quality.setup()
    out = run_stages([quality], records)
    assert sorted((r.source_line, "tokens" in r.quality) for r in out.records) == [(1, False), (1, True)]
    assert [(r.source_line, r.reason, r.score > r.threshold) for r in out.rejects] == [(2, "top_2gram_repetition", True)]
