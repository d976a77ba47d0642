"""Stage 7, escape and validate: `<` becomes `<<` except in CPM-Bee special tokens; structured
samples need `<ans>` and plain-string leaves."""

from __future__ import annotations

import json

import pytest

from corpus.pipeline.escape import EscapeSpecialTokensFn, InvalidSample, StructuredEscaper, escape_text
from schemas import Record
from schemas.build_config import EscapeConfig, WriteConfig

ESCAPER = StructuredEscaper(EscapeConfig())


def test_plain_text_escapes_every_angle_bracket():
    assert escape_text("a < b <ans> <<") == "a << b <<ans> <<<<"


def test_real_cpm_bee_samples_pass_unchanged(shared_cpm_bee):
    for line in (shared_cpm_bee / "ccpm_eval.jsonl").read_text(encoding="utf-8").splitlines()[:50]:
        sample = json.loads(line)
        assert ESCAPER.escape(sample) == sample


def test_structured_values_escape_text_but_keep_the_samples_special_tokens():
    sample = {"input": "x<y <mask_0> <div> <term>", "<term>": "t", "<ans>": {"<mask_0>": "1 <= 2"}}
    assert ESCAPER.escape(sample) == {"input": "x<<y <mask_0> <<div> <term>", "<term>": "t",
                                      "<ans>": {"<mask_0>": "1 <<= 2"}}


@pytest.mark.parametrize(("sample", "reason"), [
    ({"input": "no answer"}, "missing_ans"),
    ({"input": ["a"], "<ans>": "b"}, "non_string_value"),
    ({"input": 3, "<ans>": "b"}, "non_string_value"),
])
def test_invalid_samples_name_their_reason(sample, reason):
    with pytest.raises(InvalidSample) as error:
        ESCAPER.escape(sample)
    assert error.value.reason == reason


def test_a_payload_larger_than_a_block_is_rejected_before_packing():
    fn = EscapeSpecialTokensFn(EscapeConfig(), WriteConfig(block_size=256))
    fn.setup()
    kept, reject = fn.process_record(Record(source_path="a.txt", source_line=1, kind="text", text="x" * 500))
    assert kept is None and reject.reason == "too_large_for_block" and reject.score > reject.threshold
