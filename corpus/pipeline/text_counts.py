"""The counts behind the quality filter's metrics: tokens, letters, digits, words, and Gopher's
n-gram repetition, as exact integers (the filter divides them into ratios).

`python_text_counts` is the definition, in regexes and numpy; `_text_units.c` computes the same
integers in C, with no Python object per token (tested equal), and is what `text_counts` uses
when it is built. Without a compiler the package installs without it and the Python path runs.
"""

from __future__ import annotations

import re
from itertools import filterfalse
from typing import NamedTuple

import numpy as np

from corpus.pipeline.units import text_units, words_of

try:
    from corpus.pipeline._text_units import text_counts as _compiled_text_counts
except ImportError:  # not built (optional extension): the Python definition runs instead
    _compiled_text_counts = None

_LETTER_RUN = re.compile(r"[^\W\d_]+")
_DIGIT_RUN = re.compile(r"\d+")
_LATIN_LETTER_RUN = re.compile(r"[A-Za-z\u00c0-\u024f]+")


class TextCounts(NamedTuple):
    tokens: int  # words (runs of letters/digits) and single CJK characters: `units.tokens`
    cjk_tokens: int
    token_chars: int  # characters in all tokens
    latin_words: int  # word tokens that are not all digits
    latin_word_chars: int
    non_space: int  # characters that are not whitespace (str.split's)
    letters: int  # re's [^\W\d_]
    digits: int  # re's \d
    latin_letters: int  # [A-Za-z\u00c0-\u024f]
    top_ngram_chars: tuple[int, ...]  # per top size: occurrences x characters of the most frequent n-gram
    duplicate_ngram_chars: tuple[int, ...]  # per duplicate size: characters of tokens in a repeated n-gram


def text_counts(text: str, top_sizes: tuple[int, ...], duplicate_sizes: tuple[int, ...]) -> TextCounts:
    """The counts of `text`, with n-gram repetition for the given top and duplicate sizes."""
    if _compiled_text_counts is None:
        return python_text_counts(text, top_sizes, duplicate_sizes)
    return TextCounts(*_compiled_text_counts(text, top_sizes, duplicate_sizes))


def _run_chars(pattern: re.Pattern, text: str) -> int:
    """How many characters of `text` the runs of `pattern` cover."""
    return sum(map(len, pattern.findall(text)))


def python_text_counts(text: str, top_sizes: tuple[int, ...], duplicate_sizes: tuple[int, ...]) -> TextCounts:
    toks = text_units(text)
    lengths = np.fromiter(map(len, toks), dtype=np.int64, count=len(toks))
    words = words_of(text)  # the tokens that are not CJK characters
    latin_words = list(filterfalse(str.isdigit, words))
    # Token ids: the position where each token first occurs (equal ids = equal tokens).
    first_seen: dict[str, int] = {}
    token_ids = np.fromiter(map(first_seen.setdefault, toks, range(len(toks))), dtype=np.uint64, count=len(toks))
    top_chars, duplicate_chars = ngram_repetition_chars(token_ids, lengths, top_sizes, duplicate_sizes)
    return TextCounts(
        tokens=len(toks),
        cjk_tokens=len(toks) - len(words),
        token_chars=int(lengths.sum()),
        latin_words=len(latin_words),
        latin_word_chars=sum(map(len, latin_words)),
        non_space=sum(map(len, text.split())),
        letters=_run_chars(_LETTER_RUN, text),
        digits=_run_chars(_DIGIT_RUN, text),
        latin_letters=_run_chars(_LATIN_LETTER_RUN, text),
        top_ngram_chars=top_chars,
        duplicate_ngram_chars=duplicate_chars,
    )


_NGRAM_PRIME = np.uint64(1_000_003)


def ngram_repetition_chars(token_ids: np.ndarray, lengths: np.ndarray, top_sizes: tuple[int, ...],
                           duplicate_sizes: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Gopher's n-gram repetition, as character counts, every n at once (one sort serves all n).

    Takes token ids (equal ids = equal tokens) and token lengths in characters. For each n of
    `top_sizes`: the characters covered by all occurrences of the most frequent n-gram (ties:
    the one that occurs first; 0 when none occurs twice). For each n of `duplicate_sizes`: the
    characters of tokens covered by any n-gram that occurs more than once.
    """
    count = len(token_ids)
    top_chars = dict.fromkeys(top_sizes, 0)
    duplicate_chars = dict.fromkeys(duplicate_sizes, 0)
    # n-grams longer than the text have no occurrence; the duplicate sizes go first, in order
    repeated_sizes = [n for n in sorted(set(duplicate_sizes)) if n <= count]
    sizes = repeated_sizes + [n for n in sorted(set(top_sizes)) if n <= count and n not in repeated_sizes]
    if not sizes:
        return tuple(0 for _ in top_sizes), tuple(0 for _ in duplicate_sizes)
    # One 64-bit id per n-gram: a polynomial over token ids, built one token at a time (each n
    # reuses n-1); collisions are negligible at these lengths.
    ids_of: dict[int, np.ndarray] = {}
    ids = token_ids
    for n in range(1, max(sizes) + 1):
        if n > 1:
            ids = ids[:-1] * _NGRAM_PRIME + token_ids[n - 1:]
        ids_of[n] = ids
    grams = [ids_of[n] for n in sizes]
    offsets = np.cumsum([0] + [len(g) for g in grams])
    # One sort for all n: the n's index replaces the top bits of the key, so groups never mix
    # two n. (Short n-grams' ids are small numbers, untouched; long ones' have wrapped around
    # and look random, so dropping a few top bits keeps collisions negligible.)
    bits = np.uint64(max(1, (len(sizes) - 1).bit_length()))
    low_bits = np.uint64(64) - bits
    segment = np.repeat(np.arange(len(sizes), dtype=np.uint64), [len(g) for g in grams])
    keys = (np.concatenate(grams) & ((np.uint64(1) << low_bits) - np.uint64(1))) | (segment << low_bits)
    # How often the n-gram at each position occurs among the n-grams of its own n.
    order = np.argsort(keys)
    ordered = keys[order]
    new_group = np.ones(len(order), dtype=bool)
    new_group[1:] = ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(new_group)
    group_sizes = np.diff(np.append(starts, len(order)))
    occurrences = np.empty(len(order), dtype=np.int64)
    occurrences[order] = np.repeat(group_sizes, group_sizes)

    for index, n in enumerate(sizes):
        if n in top_chars:
            mine = occurrences[offsets[index]:offsets[index + 1]]
            top = int(mine.max())
            if top >= 2:
                start = int(np.argmax(mine == top))  # the earliest position of a top n-gram is its first occurrence
                top_chars[n] = top * int(lengths[start:start + n].sum())
    if repeated_sizes:
        # Row per n: 1 where a repeated n-gram starts. Token i is covered when one starts in
        # [i - n + 1, i]: a window sum over the row's running total.
        ns = np.array(repeated_sizes)[:, None]
        position = np.arange(count)
        repeated = np.zeros((len(ns), count), dtype=np.int64)
        repeated[position < count - ns + 1] = occurrences[:offsets[len(repeated_sizes)]] > 1
        running = np.zeros((len(ns), count + 1), dtype=np.int64)
        np.cumsum(repeated, axis=1, out=running[:, 1:])
        lower = np.maximum(0, position - ns + 1)
        covered = (running[:, 1:] - np.take_along_axis(running, lower, axis=1)) > 0
        for n, chars in zip(repeated_sizes, covered @ lengths):
            duplicate_chars[n] = int(chars)
    return tuple(top_chars[n] for n in top_sizes), tuple(duplicate_chars[n] for n in duplicate_sizes)
