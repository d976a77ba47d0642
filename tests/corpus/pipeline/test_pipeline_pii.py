"""PII: every labelled item is found and nothing else (look-alikes: dates, order numbers,
version strings, bad check digits); redaction uses placeholders CPM-Bee's escaping leaves
alone; `reject` drops the document with counts per type; structured samples' values are redacted."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from corpus.pipeline.escape import escape_text
from corpus.pipeline.pii import RedactPii, find_pii, format_counts, id_number_valid, luhn_valid, parse_counts, redact
from schemas import Record
from schemas.build_config import PiiConfig
from tests.corpus.pipeline.pii_labelled import LABELLED


def precision_recall() -> tuple[float, float, list[str]]:
    """Over the labelled set: (precision, recall, the mistakes)."""
    found_right = found = expected = 0
    mistakes: list[str] = []
    for text, labels in LABELLED:
        got = {(kind, text[s:e]) for s, e, kind in find_pii(text)}
        want = set(labels)
        found_right += len(got & want)
        found += len(got)
        expected += len(want)
        mistakes += [f"false {kind} {value!r} in {text!r}" for kind, value in got - want]
        mistakes += [f"missed {kind} {value!r} in {text!r}" for kind, value in want - got]
    return found_right / max(1, found), found_right / max(1, expected), mistakes


def test_labelled_set_precision_and_recall_are_perfect():
    precision, recall, mistakes = precision_recall()
    assert mistakes == [], mistakes
    assert precision == recall == 1.0


def test_check_digits():
    assert id_number_valid("11010519491231002X") and not id_number_valid("110105194912310021")
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")


def test_placeholders_survive_escaping_and_are_typed():
    config = PiiConfig(enabled=True)
    text, counts = redact("邮箱a.b@example.com，电话13812345678，IP 10.1.2.3。", config)
    assert text == "邮箱[EMAIL]，电话[PHONE]，IP [IP]。"
    assert counts == {"email": 1, "phone": 1, "ip": 1}
    assert escape_text(text) == text


@pytest.mark.parametrize("placeholder", ["<EMAIL>", "<mask_0>", "a>b", ""])
def test_placeholders_that_could_read_as_special_tokens_are_refused(placeholder):
    with pytest.raises(ValidationError, match="placeholder"):
        PiiConfig(placeholders={"email": placeholder})


def test_only_the_configured_types_are_looked_for():
    text, counts = redact("a@b.com 13812345678", PiiConfig(enabled=True, types=["phone"]))
    assert text == "a@b.com [PHONE]" and counts == {"phone": 1}


def record(text: str, **fields) -> Record:
    return Record(source_path="a.txt", source_line=3, kind=fields.pop("kind", "text"), text=text, **fields)


def test_redact_keeps_counts_on_the_record_and_reject_drops_the_document():
    text = "Mail me at x@y.org or call 13812345678 / 13912345678."
    kept, reject = RedactPii(PiiConfig(enabled=True)).process_record(record(text))
    assert reject is None and kept.text == "Mail me at [EMAIL] or call [PHONE] / [PHONE]."
    assert kept.pii == {"email": 1, "phone": 2}
    kept, reject = RedactPii(PiiConfig(enabled=True, action="reject")).process_record(record(text))
    assert kept is None and reject.stage == "pii" and reject.reason == "contains_pii"
    assert parse_counts(reject.detail) == {"email": 1, "phone": 2} and reject.score == 3.0
    assert parse_counts("PII found: " + format_counts({"ip": 4})) == {"ip": 4}


def test_structured_samples_have_their_values_redacted_not_their_keys():
    data = {"input": "电话13812345678", "<ans>": {"<mask_0>": "x@y.org"}}
    kept, _ = RedactPii(PiiConfig(enabled=True)).process_record(
        record("电话13812345678\nx@y.org", kind="json", data=data))
    assert kept.data == {"input": "电话[PHONE]", "<ans>": {"<mask_0>": "[EMAIL]"}}
    assert kept.text == "电话[PHONE]\n[EMAIL]"


def test_disabled_by_default_and_clean_text_is_untouched():
    original = record("Write to a@b.com")
    assert RedactPii(PiiConfig()).process_record(original) == (original, None)
    clean = record("Nothing personal here.")
    assert RedactPii(PiiConfig(enabled=True)).process_record(clean) == (clean, None)
