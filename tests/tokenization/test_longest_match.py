"""LongestMatch: the fast matcher gives exactly the longest-match rule's segmentation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenization.longest_match import LongestMatch

ALPHABET = "ab c\n☃"


def _as_items(ids: list[int], unknown: list[tuple[int, str]]) -> list[int | str]:
    items: list[int | str] = list(ids)
    for i, span in unknown:
        assert items[i] == -1
        items[i] = span
    return items


def test_longest_token_wins_and_backs_off_to_shorter(segment_by_definition) -> None:
    pieces = {"a": 0, "ab": 1, "abcd": 2, "b": 3, "c": 4}
    matcher = LongestMatch(pieces)
    # "abc" is only a prefix: the walk reaches it, then settles on "ab".
    assert _as_items(*matcher.segment("abcab")) == [1, 4, 1]
    assert _as_items(*matcher.segment("abcd")) == [2]


def test_character_only_inside_tokens_is_unknown_where_no_token_starts() -> None:
    matcher = LongestMatch({"xy": 0, "y": 1})
    assert _as_items(*matcher.segment("xyxxy")) == [0, "x", 0]


def test_consecutive_unknown_characters_form_one_span() -> None:
    matcher = LongestMatch({"a": 0})
    assert _as_items(*matcher.segment("☃☃a☃")) == ["☃☃", 0, "☃"]


def test_long_text_is_chunked_at_space_and_cached_without_changing_results(segment_by_definition) -> None:
    pieces = {" ": 0, " the": 1, "the": 2, "t": 3, "h": 4, "e": 5, "n": 6, " then": 7}
    matcher = LongestMatch(pieces)
    text = "the then the thex" * 5 + " ☃☃ ☃"
    first = _as_items(*matcher.segment(text))
    assert first == segment_by_definition(text, pieces)
    assert _as_items(*matcher.segment(text)) == first  # now from the cache


tokens = st.text(alphabet=ALPHABET, min_size=1, max_size=5)


@settings(max_examples=400, deadline=None)
@given(
    vocab=st.lists(tokens, min_size=1, max_size=25, unique=True),
    text=st.text(alphabet=ALPHABET + "d", max_size=80),
)
def test_matches_the_definition_for_any_vocab(segment_by_definition, vocab: list[str], text: str) -> None:
    pieces = {t: i for i, t in enumerate(vocab)}
    matcher = LongestMatch(pieces)
    assert _as_items(*matcher.segment(text)) == segment_by_definition(text, pieces)
    # Twice, in case the cache kept something wrong.
    assert _as_items(*matcher.segment(text)) == segment_by_definition(text, pieces)
