"""Stage 7, escape and validate: `<` becomes `<<` except in CPM-Bee special tokens; escaped
structured samples are checked and kept; structured samples need plain-string leaves."""

from __future__ import annotations

import json

import pytest

from corpus.pipeline.escape import EscapeSpecialTokens, InvalidSample, StructuredEscaper, escape_text
from schemas import Record
from schemas.build_config import EscapeConfig, WriteConfig

ESCAPER = StructuredEscaper(EscapeConfig())


def test_plain_text_escapes_every_angle_bracket():
    assert escape_text("a < b <ans> <<") == "a << b <<ans> <<<<"


def test_real_cpm_bee_samples_pass_unchanged(shared_cpm_bee):
    for line in (shared_cpm_bee / "ccpm_eval.jsonl").read_text(encoding="utf-8").splitlines()[:50]:
        sample = json.loads(line)
        assert ESCAPER.prepare(sample) == sample


def test_escaped_input_is_checked_and_never_escaped_again():
    sample = {"input": "1 << 2 <mask_0>", "<<k": "a<<<<b", "<ans>": {"<mask_0>": "x"}}
    assert ESCAPER.prepare(sample) == sample
    with pytest.raises(InvalidSample) as error:
        ESCAPER.prepare({"input": "1 < 2", "<ans>": "x"})
    assert error.value.reason == "unescaped_lt" and "escape.input: raw" in str(error.value)
    with pytest.raises(InvalidSample):
        ESCAPER.prepare({"a<b": "key with a lone <", "<ans>": "x"})


def test_raw_input_is_escaped_once():
    raw = StructuredEscaper(EscapeConfig(input="raw"))
    assert raw.prepare({"input": "1 < 2", "<ans>": "<b>"}) == {"input": "1 << 2", "<ans>": "<<b>"}


def test_transform_mode_stores_everything_unescaped():
    """`escape.documents: transform`: escaped samples are unescaped (the exact inverse), documents kept as read."""
    sample = {"input": "1 << 2 <mask_0> a<<<<b", "<ans>": {"<mask_0>": "x"}}
    assert ESCAPER.prepare(sample, store_escaped=False) == {"input": "1 < 2 <mask_0> a<<b", "<ans>": {"<mask_0>": "x"}}
    assert StructuredEscaper(EscapeConfig(input="raw")).escape(ESCAPER.prepare(sample, store_escaped=False)) == sample
    fn = EscapeSpecialTokens(EscapeConfig(documents="transform"))
    fn.setup()
    doc = Record(source_path="a.jsonl", source_line=1, kind="text", text="a < b", metadata={"id": 7})
    assert fn.process_record(doc)[0].payload == {"text": "a < b", "id": 7}


def test_a_document_is_written_as_text_plus_its_metadata_escaped_once():
    fn = EscapeSpecialTokens(EscapeConfig())
    fn.setup()
    doc = Record(source_path="a.jsonl", source_line=1, kind="text", text="a < b",
                 metadata={"id": 7, "source": "x<y", "meta": {"n": [1, "<"]}})
    assert fn.process_record(doc)[0].payload == {"text": "a << b", "id": 7, "source": "x<<y", "meta": {"n": [1, "<<"]}}


def test_a_record_kept_for_transforms_may_hold_any_json_value():
    assert ESCAPER.prepare({"question": "q", "id": 3, "tags": ["a<<b"]}) == {"question": "q", "id": 3, "tags": ["a<<b"]}


def test_structured_values_escape_text_but_keep_the_samples_special_tokens():
    sample = {"input": "x<y <mask_0> <div> <term>", "<term>": "t", "<ans>": {"<mask_0>": "1 <= 2"}}
    assert ESCAPER.escape(sample) == {"input": "x<<y <mask_0> <<div> <term>", "<term>": "t",
                                      "<ans>": {"<mask_0>": "1 <<= 2"}}


@pytest.mark.parametrize(("sample", "reason"), [
    ({"input": ["a"], "<ans>": "b"}, "non_string_value"),
    ({"input": 3, "<ans>": "b"}, "non_string_value"),
])
def test_invalid_samples_name_their_reason(sample, reason):
    with pytest.raises(InvalidSample) as error:
        ESCAPER.escape(sample)
    assert error.value.reason == reason


def test_a_payload_larger_than_a_block_is_rejected_before_packing():
    fn = EscapeSpecialTokens(EscapeConfig(), WriteConfig(block_size=256))
    fn.setup()
    kept, reject = fn.process_record(Record(source_path="a.txt", source_line=1, kind="text", text="x" * 500))
    assert kept is None and reject.reason == "too_large_for_block" and reject.score > reject.threshold
