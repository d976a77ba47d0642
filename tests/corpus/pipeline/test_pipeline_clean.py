"""Stage 2, clean: ftfy repairs, normal forms, control characters, HTML, whitespace."""

from __future__ import annotations

from corpus.pipeline.clean import CleanText, clean_text, clean_value
from corpus.pipeline.file_chain import run_stages
from schemas import BuildConfig, Record
from schemas.build_config import CleanConfig


def test_mojibake_is_repaired():
    assert clean_text("The Mona Lisa doesnâ€™t have eyebrows.", CleanConfig()) == "The Mona Lisa doesn’t have eyebrows."


def test_normal_form_is_configurable():
    assert clean_text("①②", CleanConfig(normalization="NFKC")) == "12"
    assert clean_text("①②", CleanConfig(normalization="NFC")) == "①②"


def test_chinese_full_width_punctuation_and_quotes_survive_repair():
    assert clean_text("“中文”，标点。", CleanConfig()) == "“中文”，标点。"
    assert clean_text("“中文”，ｆｕｌｌ", CleanConfig(normalization="NFKC")) == "“中文”,full"


def test_control_characters_go_and_whitespace_is_tidied():
    text = "a\x00b\u200bc  \t d \n\n\n\n  e\r\nf\ufeff"
    assert clean_text(text, CleanConfig()) == "abc d\n\ne\nf"


def test_html_becomes_text_only_when_asked():
    page = "<html><body><p>First <b>para</b></p><div>Second</div><script>x()</script></body></html>"
    assert clean_text(page, CleanConfig(html_to_text=True)) == "First para\n\nSecond"
    assert "<p>" in clean_text(page, CleanConfig())


def test_json_values_are_cleaned_and_keys_kept():
    assert clean_value({"<ans>": " a  b ", "k\x00": ["x\x01"]}, CleanConfig()) == {"<ans>": "a b", "k\x00": ["x"]}


def test_clean_stage_rejects_text_left_empty():
    records = [Record(source_path="a.txt", source_line=1, kind="text", text="  ok  "),
               Record(source_path="a.txt", source_line=2, kind="text", text="\u200b\x00")]
    clean = CleanText(CleanConfig())
    clean.setup()
    out = run_stages([clean], records)
    assert [r.text for r in out.records] == ["ok"]
    assert [(r.source_line, r.stage, r.reason) for r in out.rejects] == [(2, "clean", "empty_after_clean")]


def test_clean_rejects_keep_the_configured_amount_of_text():
    record = Record(source_path="a.txt", source_line=1, kind="text", text="\u200b" * 50)
    _, reject = CleanText(CleanConfig(), reject_text_chars=5).process_record(record)
    assert reject.reason == "empty_after_clean" and reject.text == "\u200b" * 5


def test_checkpoints_are_not_reused_when_rejects_would_keep_another_amount_of_text():
    config = BuildConfig(input=["in"], output="out", dataset_name="d", task_name="t")
    shorter = config.model_copy(update={"write": config.write.model_copy(update={"reject_text_chars": 100})})
    assert config.prepare_fingerprint() != shorter.prepare_fingerprint()
