"""The longest-match engines (compiled and pure Python) give exactly the rule's segmentation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenization.longest_match import build_matcher, compiled_available

ENGINES = [
    "python",
    pytest.param("c", marks=pytest.mark.skipif(not compiled_available(), reason="C engine not built")),
]

ALPHABET = "ab c\n☃𠀀"  # 𠀀 (U+20000): outside the compiled root table


def _as_items(ids: list[int], unknown: list[tuple[int, str]]) -> list[int | str]:
    items: list[int | str] = list(ids)
    for i, span in unknown:
        assert items[i] == -1
        items[i] = span
    return items


@pytest.mark.parametrize("engine", ENGINES)
def test_longest_token_wins_and_backs_off_to_shorter(engine: str, segment_by_definition) -> None:
    pieces = {"a": 0, "ab": 1, "abcd": 2, "b": 3, "c": 4}
    matcher = build_matcher(pieces, engine)
    # "abc" is only a prefix: the walk reaches it, then settles on "ab".
    assert _as_items(*matcher.segment("abcab")) == [1, 4, 1]
    assert _as_items(*matcher.segment("abcd")) == [2]


@pytest.mark.parametrize("engine", ENGINES)
def test_character_only_inside_tokens_is_unknown_where_no_token_starts(engine: str) -> None:
    matcher = build_matcher({"xy": 0, "y": 1}, engine)
    assert _as_items(*matcher.segment("xyxxy")) == [0, "x", 0]


@pytest.mark.parametrize("engine", ENGINES)
def test_consecutive_unknown_characters_form_one_span(engine: str) -> None:
    matcher = build_matcher({"a": 0}, engine)
    assert _as_items(*matcher.segment("☃☃a☃")) == ["☃☃", 0, "☃"]


@pytest.mark.parametrize("engine", ENGINES)
def test_long_text_is_chunked_at_space_and_cached_without_changing_results(engine: str, segment_by_definition) -> None:
    pieces = {" ": 0, " the": 1, "the": 2, "t": 3, "h": 4, "e": 5, "n": 6, " then": 7}
    matcher = build_matcher(pieces, engine)
    text = "the then the thex" * 5 + " ☃☃ ☃"
    first = _as_items(*matcher.segment(text))
    assert first == segment_by_definition(text, pieces)
    assert _as_items(*matcher.segment(text)) == first  # now from the cache


tokens = st.text(alphabet=ALPHABET, min_size=1, max_size=5)


@pytest.mark.parametrize("engine", ENGINES)
@settings(max_examples=300, deadline=None)
@given(
    vocab=st.lists(tokens, min_size=1, max_size=25, unique=True),
    text=st.text(alphabet=ALPHABET + "d", max_size=80),
)
def test_matches_the_definition_for_any_vocab(engine: str, segment_by_definition, vocab: list[str], text: str) -> None:
    pieces = {t: i for i, t in enumerate(vocab)}
    matcher = build_matcher(pieces, engine)
    assert _as_items(*matcher.segment(text)) == segment_by_definition(text, pieces)
    # Twice, in case the cache kept something wrong.
    assert _as_items(*matcher.segment(text)) == segment_by_definition(text, pieces)


def test_engines_agree_on_the_golden_vocab_for_any_text(golden_tokenizer) -> None:
    if not compiled_available():
        pytest.skip("C engine not built")
    pieces = {t: i for t, i in golden_tokenizer.encoder.items() if not (t.startswith("<") and t.endswith(">"))}
    c, py = build_matcher(pieces, "c"), build_matcher(pieces, "python")
    text = "".join(sorted(pieces))[::3] + " ☃𠀀 a\n\n" * 3
    assert c.segment(text) == py.segment(text)


def test_unknown_engine_and_empty_token_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown engine"):
        build_matcher({"a": 0}, "rust")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty token"):
        build_matcher({"": 0}, "python")


@pytest.mark.parametrize("engine", ENGINES)
def test_plain_ids_answers_only_the_simple_case(engine: str) -> None:
    matcher = build_matcher({"a": 0, "ab": 1, "<": 2}, engine)
    assert matcher.plain_ids("aba") == [1, 0]
    assert matcher.plain_ids("") == []
    assert matcher.plain_ids("a<") is None  # special-token syntax: the tokenizer's general path
    assert matcher.plain_ids("a☃") is None  # unknown span: needs the ext table
    with pytest.raises(TypeError, match="text must be str"):
        matcher.plain_ids(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("engine", ENGINES)
def test_large_dense_vocab_matches_the_definition(engine: str, segment_by_definition) -> None:
    """Thousands of tokens over a few characters: deep paths, long probe runs in the compiled
    engine's hash table and false positives in its filter all occur."""
    import random

    rnd = random.Random(3)
    letters = "abcde☃𠀀"
    vocab = {"".join(rnd.choice(letters) for _ in range(rnd.randint(1, 9))) for _ in range(6000)}
    pieces = {t: i for i, t in enumerate(sorted(vocab))}
    matcher = build_matcher(pieces, engine)
    for _ in range(30):
        text = "".join(rnd.choice(letters + "xy") for _ in range(rnd.randint(0, 200)))
        assert _as_items(*matcher.segment(text)) == segment_by_definition(text, pieces)
