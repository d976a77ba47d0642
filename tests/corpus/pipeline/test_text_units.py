"""The compiled text units (`_text_units.c`) against their Python definitions: the quality
filter's counts (whose n-gram part is checked against a by-hand count too), the MinHash
shingle hashes and the clean stage's whitespace tidying give exactly the same results on any
text."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numpy as np

from corpus.pipeline import clean, fingerprint
from corpus.pipeline import text_counts as counts_module
from corpus.pipeline.text_counts import python_text_counts
from corpus.pipeline.units import text_units
from schemas.build_config import NearDedupeConfig

TOP_SIZES = (2, 3, 4)
DUPLICATE_SIZES = (5, 6, 7, 8, 9, 10)
compiled = counts_module._compiled_text_counts
needs_compiled = pytest.mark.skipif(compiled is None or fingerprint._compiled_shingle_hashes is None,
                                    reason="corpus.pipeline._text_units not built")

# Pieces that hit every character class the counts tell apart: ASCII and Latin-1 letters, '_',
# ASCII, Arabic-Indic and fullwidth digits, numerics that are alphanumeric but not digits
# ('½', 'Ⅳ'), superscripts (digits, not decimals), a combining mark, whitespace of several kinds
# (\x1c is whitespace to str.split), Han, kana (with the katakana middle dot, punctuation
# inside the CJK range), Hangul, a character outside the BMP, and punctuation.
PIECES = ["the", "cat", "a", "Ünï", "x_y", "_", "42", "٣٤", "１２", "½", "Ⅳ", "x²", "²", "e\u0301",
          " ", " ", "\n", "\t", "\x1c", "\u3000", "中", "文", "字", "か", "カ", "・", "한", "𠀀", "😀",
          ".", "…", "#", "-", "。", "İ", "ẞ", "ΣΑΣ", "Straße"]  # the last ones change length when lower-cased
texts = st.lists(st.sampled_from(PIECES), max_size=80).map("".join)


def by_hand(text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The n-gram counts straight from their definition, with tuples of tokens."""
    toks = text_units(text)
    tops, duplicates = [], []
    for n in TOP_SIZES:
        grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
        counts = Counter(grams)
        top = max(counts.values(), default=0)
        first = next((g for g in grams if counts[g] == top), None)
        tops.append(top * sum(map(len, first)) if top >= 2 else 0)
    for n in DUPLICATE_SIZES:
        grams = [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
        counts = Counter(grams)
        covered = {i + k for i, g in enumerate(grams) if counts[g] > 1 for k in range(n)}
        duplicates.append(sum(len(toks[i]) for i in covered))
    return tuple(tops), tuple(duplicates)


def test_counts_of_a_known_text():
    text = "the cat the cat the cat 中文中文 42 x_y ½\tend"
    counts = python_text_counts(text, TOP_SIZES, DUPLICATE_SIZES)
    # tokens: the cat the cat the cat 中 文 中 文 42 x_y ½ end
    assert (counts.tokens, counts.cjk_tokens, counts.token_chars) == (14, 4, 31)
    assert (counts.latin_words, counts.latin_word_chars) == (9, 25)  # "42" is all digits
    assert counts.non_space == len(text) - text.count(" ") - 1
    # letters: CJK characters and '½' (numeric, not a decimal) too; Latin: not those
    assert (counts.letters, counts.digits, counts.latin_letters) == (28, 2, 23)
    # "the cat" x3 covers 18 characters, "the cat the" x2 18, "the cat the cat" x2 24
    assert counts.top_ngram_chars == (18, 18, 24)
    assert counts.duplicate_ngram_chars == (0,) * 6  # no 5-gram occurs twice

    repeated = python_text_counts("a b c d e x a b c d e", TOP_SIZES, DUPLICATE_SIZES)
    assert repeated.duplicate_ngram_chars == (10, 0, 0, 0, 0, 0)


@settings(max_examples=300, deadline=None)
@given(text=texts)
def test_python_ngram_counts_equal_the_definition(text: str):
    counts = python_text_counts(text, TOP_SIZES, DUPLICATE_SIZES)
    assert (counts.top_ngram_chars, counts.duplicate_ngram_chars) == by_hand(text)


@needs_compiled
@settings(max_examples=1000, deadline=None)
@given(text=texts)
def test_compiled_counts_equal_the_python_definition(text: str):
    expected = python_text_counts(text, TOP_SIZES, DUPLICATE_SIZES)
    assert counts_module.TextCounts(*compiled(text, TOP_SIZES, DUPLICATE_SIZES)) == expected


@needs_compiled
def test_compiled_counts_take_sizes_in_any_order_and_longer_than_the_text():
    text = "a b a b a b 中 中 中"
    for tops, duplicates in [((4, 2), (3,)), ((2, 2), ()), ((), (1, 50)), ((99,), (5, 3))]:
        assert compiled(text, tops, duplicates) == tuple(python_text_counts(text, tops, duplicates))


@needs_compiled
def test_compiled_counts_reject_sizes_below_one():
    with pytest.raises(ValueError, match=">= 1"):
        compiled("a b", (0,), ())


@needs_compiled
@settings(max_examples=1000, deadline=None)
@given(text=texts, n=st.integers(1, 7))
def test_compiled_shingle_hashes_equal_the_python_definition(text: str, n: int):
    config = NearDedupeConfig(ngram=n, shingles="words_and_chars")
    compiled_hashes = fingerprint.shingle_hashes(text, config)
    assert compiled_hashes.dtype == np.uint32
    assert compiled_hashes.tolist() == fingerprint.python_shingle_hashes(text, config).tolist()


@needs_compiled
def test_compiled_shingle_hashes_of_a_text_without_tokens_are_empty():
    assert fingerprint.shingle_hashes(" ,.!", NearDedupeConfig(shingles="words_and_chars")).tolist() == []
    with pytest.raises(ValueError, match=">= 1"):
        fingerprint._compiled_shingle_hashes("a b", 0)


whitespace_texts = st.lists(st.sampled_from([" ", "  ", "\t", "\u00a0", "\u3000", "\n", "\n\n", "\r", "\u2003", "\x0b",
                                             "a", "中", "𠀀", ".", "word"]), max_size=60).map("".join)


@pytest.mark.skipif(clean._compiled_tidy_whitespace is None, reason="corpus.pipeline._text_units not built")
@settings(max_examples=2000, deadline=None)
@given(text=whitespace_texts)
def test_compiled_whitespace_tidying_equals_the_regex_definition(text: str):
    assert clean.tidy_whitespace(text) == clean.python_tidy_whitespace(text)


def test_whitespace_tidying_rules():
    assert clean.tidy_whitespace("  a \t\u3000b \n  c\n\n\n\n d\u00a0\n") == "a b\nc\n\nd"


needs_char_minhash = pytest.mark.skipif(fingerprint._compiled_char_minhash is None,
                                        reason="corpus.pipeline._text_units not built")


@needs_char_minhash
@settings(max_examples=1000, deadline=None)
@given(text=texts, n=st.integers(1, 7), num_perm=st.sampled_from([1, 7, 112, 128]))
def test_compiled_char_minhash_equals_the_numpy_definition(text: str, n: int, num_perm: int):
    hasher = fingerprint.MinHasher(NearDedupeConfig(ngram=n, num_perm=num_perm, bands=None, rows=None))
    chars = fingerprint.shingle_text(text)
    assert hasher.char_signature(chars) == hasher.numpy_char_signature(chars)


@needs_char_minhash
def test_compiled_char_minhash_of_a_long_text_and_bad_arguments():
    hasher = fingerprint.MinHasher(NearDedupeConfig())
    chars = fingerprint.shingle_text("中文 and English, " * 2000)  # several blocks of shingles
    assert hasher.char_signature(chars) == hasher.numpy_char_signature(chars)
    assert hasher.char_signature("") is None and hasher.numpy_char_signature("") is None
    with pytest.raises(ValueError, match="n >= 1"):
        fingerprint._compiled_char_minhash("abc", 0, hasher._a_bytes, hasher._b_bytes)
    with pytest.raises(ValueError, match="equal"):
        fingerprint._compiled_char_minhash("abc", 5, hasher._a_bytes, hasher._b_bytes[:-4])


def test_whitespace_collapse_equals_the_regex_on_every_code_point():
    """`collapse_whitespace` (str.split) and `\\s+` agree on which characters are whitespace."""
    import re
    import sys
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)
    spaces = "".join(c for c in every if re.fullmatch(r"\s", c))
    assert spaces == "".join(c for c in every if c.isspace())
    text = "a" + "b".join(spaces) + "c \u3000 d"
    assert fingerprint.collapse_whitespace(text) == re.sub(r"\s+", " ", text).strip()
