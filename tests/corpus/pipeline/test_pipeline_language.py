"""Language identification: every document is labelled; Chinese, English and mixed documents
are kept, other languages rejected (`wrong_language`) with their shares; text cld2 cannot read
is a label or a counted reject, never a crash."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from corpus.pipeline.language import IdentifyLanguage, identify, kept_share
from corpus.pipeline.stage import KEPT, REJECTED, StageFn
from schemas import Record
from schemas.build_config import LanguageConfig

ENGLISH = "Apache Beam is a unified model for defining both batch and streaming data-parallel processing pipelines."
CHINESE = "自然语言处理是人工智能领域的一个重要方向，它研究如何让计算机理解和生成人类语言。"
MIXED = ("我们用 PyTorch 的 DataLoader 加载数据，再用 DeepSpeed ZeRO-3 训练模型；"
         "learning rate 设为 1e-4，batch size 为 32，checkpoint 每 1000 step 保存一次。")
GERMAN = "Die Verarbeitung natürlicher Sprache ist ein wichtiges Teilgebiet der künstlichen Intelligenz und der Linguistik."
FRENCH = "Le traitement automatique des langues est un domaine de recherche important de l'intelligence artificielle."


def record(text: str, kind: str = "text") -> Record:
    return Record(source_path="a.txt", source_line=1, kind=kind, text=text,
                  data={"input": text, "<ans>": "x"} if kind == "json" else None)


def run(text: str, kind: str = "text", **config) -> tuple[Record | None, object]:
    fn = IdentifyLanguage(LanguageConfig(**config))
    return fn.process_record(record(text, kind))


@pytest.mark.parametrize("text, language", [(ENGLISH, "en"), (CHINESE, "zh"), (MIXED, "zh")])
def test_chinese_english_and_mixed_documents_are_labelled_and_kept(text, language):
    kept, reject = run(text)
    assert reject is None and kept.language == language and 0 < kept.language_score <= 1


def test_a_mixed_document_is_scored_by_its_share_in_kept_languages():
    identified = identify(MIXED + " " + ENGLISH)
    assert set(identified.shares) == {"zh", "en"}
    assert kept_share(identified, ["zh", "en"]) == 1.0
    assert kept_share(identified, ["zh"]) < 1.0


@pytest.mark.parametrize("text, language", [(GERMAN, "de"), (FRENCH, "fr")])
def test_other_languages_are_rejected_with_their_shares(text, language):
    kept, reject = run(text)
    assert kept is None
    assert reject.stage == "language" and reject.reason == "wrong_language"
    assert reject.score == 0.0 and reject.threshold == 0.5 and f"{language} 100%" in reject.detail


def test_annotate_only_keeps_every_language():
    kept, reject = run(GERMAN, keep=None)
    assert reject is None and kept.language == "de"


def test_structured_samples_are_labelled_but_not_rejected_unless_asked():
    kept, reject = run(FRENCH, kind="json")
    assert reject is None and kept.language == "fr"
    assert run(FRENCH, kind="json", apply_to_json=True)[1].reason == "wrong_language"


def test_zh_keeps_traditional_chinese():
    kept, _ = run("自然語言處理是人工智慧領域的一個重要方向，它研究如何讓電腦理解和產生人類語言。")
    assert kept is not None and kept.language.startswith("zh")


@pytest.mark.parametrize("text", ["12345 67890 +-*/ 3.14", "#### $$$ %%% " * 12, "short line"])
def test_unidentified_text_is_labelled_un_and_kept_unless_reject_unknown(text):
    kept, _ = run(text)
    assert kept.language == "un" and kept.language_score == 0.0
    kept, reject = run(text, reject_unknown=True)
    assert kept is None and reject.reason == "wrong_language" and reject.detail.startswith("no language identified")


@pytest.mark.parametrize("text", ["English text \x00\x7f\x85\x9f with control characters in it " * 3,
                                  "bad \ud800 surrogate " + ENGLISH, "\ufffe\uffff" * 10, ""])
def test_text_cld2_cannot_read_is_labelled_never_a_crash(text):
    identified = identify(text)
    assert identified.language in ("en", "un")
    kept, reject = run(text, reject_unknown=True)
    assert (kept is None) != (reject is None)
    if reject is not None:
        assert reject.reason == "wrong_language"
    assert run(text)[1] is None


def test_disabled_stage_passes_records_unlabelled():
    kept, reject = run(GERMAN, enabled=False)
    assert reject is None and kept.language is None


def test_beam_stage_routes_rejects_and_keeps_the_rest():
    with TestPipeline() as p:
        outputs = (p | beam.Create([record(ENGLISH), record(GERMAN), record(MIXED)])
                   | beam.ParDo(StageFn(IdentifyLanguage(LanguageConfig()))).with_outputs(REJECTED, main=KEPT))
        assert_that(outputs[KEPT] | "kept" >> beam.Map(lambda r: r.language), equal_to(["en", "zh"]), label="kept")
        assert_that(outputs[REJECTED] | "rej" >> beam.Map(lambda r: r.reason), equal_to(["wrong_language"]), label="rejected")
