"""Stage 3, split: as few pieces as possible, paragraph then sentence boundaries, never inside a
special token, short pieces counted as rejects."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.pipeline.file_chain import run_stages
from corpus.pipeline.split import SplitLongDocuments, split_text
from schemas import Record
from schemas.build_config import SplitConfig


def test_short_text_is_not_split():
    assert split_text("short text", 100) == ["short text"]


def test_cuts_fall_on_paragraphs_before_sentences():
    paragraphs = ["A" * 40 + ". " + "B" * 40 + ".", "C" * 60 + "."]
    pieces = split_text("\n".join(paragraphs), 90)
    assert pieces == paragraphs


def test_chinese_sentences_split_at_chinese_punctuation():
    text = "这是第一句话。" * 10 + "这是第二句话！" * 10
    pieces = split_text(text, 80)
    assert all(len(p) <= 80 and p.endswith(("。", "！")) for p in pieces)
    assert "".join(pieces) == text
    assert len(pieces) == -(-len(text) // 77)  # 7-char sentences: 11 per 80-char piece; no piece wasted


def test_a_special_token_is_never_cut():
    text = ("word " * 19 + "<mask_12>") * 6
    for piece in split_text(text, 100):
        assert re.sub(r"<mask_12>", "", piece).count("<") == 0 and piece.count(">") == piece.count("<")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["Hello world. ", "你好。", "\n", "\n\n", "x" * 30, "<ans>", " "]), max_size=80),
       st.integers(min_value=20, max_value=120))
def test_pieces_are_bounded_and_lose_only_whitespace(units, max_length):
    text = "".join(units)
    pieces = split_text(text, max_length)
    assert all(len(p) <= max(max_length, 5) for p in pieces)
    assert re.sub(r"\s", "", "".join(pieces)) == re.sub(r"\s", "", text)


def test_split_stage_numbers_pieces_and_rejects_short_ones():
    long = "First sentence is long enough to keep. " * 5 + "\n" + "Tiny."
    records = [Record(source_path="a.txt", source_line=3, kind="text", text=long),
               Record(source_path="a.txt", source_line=4, kind="text", text="short"),
               Record(source_path="b.json", source_line=1, kind="json", text="x", data={"x": "x"})]
    split = SplitLongDocuments(SplitConfig(min_length=10, max_length=200))
    split.setup()
    out = run_stages([split], records)
    assert sorted((r.source_path, r.source_line, r.piece) for r in out.records) == [("a.txt", 3, 0), ("b.json", 1, 0)]
    assert sorted((r.source_line, r.piece, r.reason) for r in out.rejects) == [(3, 1, "too_short_piece"), (4, 0, "too_short")]
