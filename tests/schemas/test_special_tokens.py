"""CPM-Bee's special-token syntax, defined once (schemas/special_tokens.py): the narrower shapes
the build relies on are special tokens of that syntax, and plain text survives the round trip."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.special_tokens import BOUNDED_TOKEN, SYNTAX, TOKEN_NAME, escape_text, plain_text, unescape_text

ALPHABET = st.sampled_from(list("ab <>\n_/0中"))


def _is_syntax_token(text: str) -> bool:
    match = SYNTAX.fullmatch(text)
    return match is not None and match.group(1) is None and len(text) > 2


@given(st.from_regex(TOKEN_NAME, fullmatch=True))
def test_every_name_a_sample_gives_a_token_is_a_special_token_of_the_syntax(token):
    assert _is_syntax_token(token)


@given(st.from_regex(BOUNDED_TOKEN, fullmatch=True))
def test_every_span_the_splitter_keeps_whole_is_a_special_token_of_the_syntax(token):
    assert _is_syntax_token(token)


@given(st.text(ALPHABET))
@settings(max_examples=300)
def test_plain_text_escaped_reads_back_as_itself(text):
    assert plain_text(escape_text(text)) == text
    assert unescape_text(escape_text(text)) == text


def test_special_tokens_stand_for_nothing_and_a_stray_lt_for_itself():
    assert plain_text("a<<b <ans> c</s>") == "a<b  c"
    assert plain_text("<a b>x") == "x"  # the tokenizer reads `<a b>` as one special token too
    assert plain_text("x <") == "x <" and plain_text("<open never closed") == "<open never closed"
