"""Stage 4, quality filter: heuristics from Gopher, C4 and FineWeb, adapted to Chinese by
counting characters where words do not apply. Every metric is computed and kept on the record
(`record.quality`); the first failing filter rejects it with its reason, score and threshold.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import filterfalse

import apache_beam as beam
import numpy as np

from corpus.pipeline.stage import REJECTED, FilterDoFn, reject_record
from corpus.pipeline.units import tokens, words_of
from schemas import Record, Reject
from schemas.build_config import QualityConfig

STAGE = "quality"
_BULLETS = ("•", "-", "*", "·", "‣", "◦", "●", "▪", "–", "—", "→")
_ELLIPSES = ("...", "…")
_TERMINAL = (".", "!", "?", "。", "！", "？", '"', "”", "」", "』")
MIN_LATIN_WORDS_FOR_LENGTH = 10
# Counts come from runs matched by one C-level regex pass each, never a Python loop per character.
_LETTER_RUN = re.compile(r"[^\W\d_]+")
_DIGIT_RUN = re.compile(r"\d+")
_LATIN_LETTER_RUN = re.compile(r"[A-Za-z\u00c0-\u024f]+")


def _run_chars(pattern: re.Pattern, text: str) -> int:
    """How many characters of `text` the runs of `pattern` cover."""
    return sum(map(len, pattern.findall(text)))


def _duplicate_fractions(parts: list[str]) -> tuple[float, float]:
    """(fraction of parts that repeat an earlier one, fraction of characters in them)."""
    if not parts:
        return 0.0, 0.0
    seen: set[str] = set()
    duplicates = duplicate_chars = 0
    for part in parts:
        if part in seen:
            duplicates += 1
            duplicate_chars += len(part)
        seen.add(part)
    return duplicates / len(parts), duplicate_chars / max(1, sum(map(len, parts)))


_NGRAM_PRIME = np.uint64(1_000_003)


def ngram_repetition(token_ids: np.ndarray, lengths: np.ndarray, top_sizes: list[int],
                     duplicate_sizes: list[int]) -> dict[str, float]:
    """Gopher's n-gram repetition metrics, every n at once (texts are short, so numpy's cost is
    per call, not per token: one sort serves all n, and one cumulative sum all the windows).

    Takes token ids (equal ids = equal tokens), token lengths in characters, the n of the
    `top_{n}gram_chars` metrics (characters covered by all occurrences of the most frequent
    n-gram; ties: the one that occurs first) and of the `duplicate_{n}gram_chars` metrics
    (characters of tokens covered by any n-gram that occurs more than once). Both are
    fractions of all token characters. Returns them by name.
    """
    count, total_chars = len(token_ids), int(lengths.sum())
    stats = {f"top_{n}gram_chars": 0.0 for n in top_sizes}
    stats.update({f"duplicate_{n}gram_chars": 0.0 for n in duplicate_sizes})
    # n-grams longer than the text have no occurrence; the duplicate sizes go first, in order
    duplicate_sizes = [n for n in sorted(duplicate_sizes) if n <= count]
    sizes = duplicate_sizes + [n for n in sorted(top_sizes) if n <= count and n not in duplicate_sizes]
    if not sizes or total_chars == 0:
        return stats
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
        if n in top_sizes:
            mine = occurrences[offsets[index]:offsets[index + 1]]
            top = int(mine.max())
            if top >= 2:
                start = int(np.argmax(mine == top))  # the earliest position of a top n-gram is its first occurrence
                stats[f"top_{n}gram_chars"] = float(top * lengths[start:start + n].sum()) / total_chars
    if duplicate_sizes:
        # Row per n: 1 where a repeated n-gram starts. Token i is covered when one starts in
        # [i - n + 1, i]: a window sum over the row's running total.
        ns = np.array(duplicate_sizes)[:, None]
        position = np.arange(count)
        repeated = np.zeros((len(ns), count), dtype=np.int64)
        repeated[position < count - ns + 1] = occurrences[:offsets[len(duplicate_sizes)]] > 1
        running = np.zeros((len(ns), count + 1), dtype=np.int64)
        np.cumsum(repeated, axis=1, out=running[:, 1:])
        lower = np.maximum(0, position - ns + 1)
        covered = (running[:, 1:] - np.take_along_axis(running, lower, axis=1)) > 0
        for n, chars in zip(duplicate_sizes, covered @ lengths):
            stats[f"duplicate_{n}gram_chars"] = float(chars) / total_chars
    return stats


def text_stats(text: str, config: QualityConfig) -> dict[str, float]:
    """Every quality metric of `text` that the config asks for, by name."""
    toks = tokens(text)
    count = len(toks)
    lengths = np.fromiter(map(len, toks), dtype=np.int64, count=count)
    # Tokens are CJK characters and words; the words alone are one more regex pass, and every
    # CJK character of the text is a token, so the CJK count is what is left.
    words = words_of(text)
    cjk = count - len(words)
    latin_words = list(filterfalse(str.isdigit, words))
    non_space = max(1, sum(map(len, text.split())))  # str.split and re's \s: the same whitespace
    letters = _run_chars(_LETTER_RUN, text)
    digits = _run_chars(_DIGIT_RUN, text)
    lines = [line for line in map(str.strip, text.split("\n")) if line]
    paragraphs = [p for p in map(str.strip, text.split("\n\n")) if p]
    line_count = max(1, len(lines))
    stats: dict[str, float] = {
        "tokens": float(count),
        "symbol_ratio": (text.count("#") + sum(text.count(e) for e in _ELLIPSES)) / max(1, count),
        "digit_ratio": digits / non_space,
        "letter_ratio": letters / non_space,
        "target_script_ratio": (cjk + _run_chars(_LATIN_LETTER_RUN, text)) / letters if letters else 1.0,
        "bullet_lines": sum(1 for line in lines if line.startswith(_BULLETS)) / line_count,
        "ellipsis_lines": sum(1 for line in lines if line.endswith(_ELLIPSES)) / line_count,
        "terminal_punctuation_lines": sum(1 for line in lines if line.endswith(_TERMINAL)) / line_count,
    }
    if config.max_short_lines is not None:  # tokenising every line separately is costly: only when asked
        stats["short_lines"] = sum(len(tokens(line)) < 4 for line in lines) / line_count
    if len(latin_words) >= MIN_LATIN_WORDS_FOR_LENGTH:
        stats["mean_word_length"] = sum(map(len, latin_words)) / len(latin_words)
    stats["duplicate_lines"], stats["duplicate_line_chars"] = _duplicate_fractions(lines)
    stats["duplicate_paragraphs"], stats["duplicate_paragraph_chars"] = _duplicate_fractions(paragraphs)
    # Token ids: the position where each token first occurs (exact, and no per-token Python code).
    first_seen: dict[str, int] = {}
    token_ids = np.fromiter(map(first_seen.setdefault, toks, range(count)), dtype=np.uint64, count=count)
    stats.update(ngram_repetition(token_ids, lengths, list(config.max_top_ngram_chars),
                                  list(config.max_duplicate_ngram_chars)))
    return stats


@dataclass(frozen=True)
class Check:
    """One filter: the metric it reads, its bound, which side fails, and the reject reason."""

    metric: str
    threshold: float
    fails: Callable[[float, float], bool]
    reason: str


def _below(value: float, bound: float) -> bool:
    return value < bound


def _above(value: float, bound: float) -> bool:
    return value > bound


def build_checks(config: QualityConfig) -> list[Check]:
    """The enabled filters, in the order they are tried (cheap, decisive ones first)."""
    table = [
        ("tokens", config.min_tokens, _below, "too_few_tokens"),
        ("tokens", config.max_tokens, _above, "too_many_tokens"),
        ("target_script_ratio", config.min_target_script_ratio, _below, "foreign_script"),
        ("letter_ratio", config.min_letter_ratio, _below, "too_few_letters"),
        ("digit_ratio", config.max_digit_ratio, _above, "too_many_digits"),
        ("symbol_ratio", config.max_symbol_ratio, _above, "too_many_symbols"),
        ("mean_word_length", config.min_mean_word_length, _below, "short_mean_word_length"),
        ("mean_word_length", config.max_mean_word_length, _above, "long_mean_word_length"),
        ("bullet_lines", config.max_bullet_lines, _above, "too_many_bullet_lines"),
        ("ellipsis_lines", config.max_ellipsis_lines, _above, "too_many_ellipsis_lines"),
        ("short_lines", config.max_short_lines, _above, "too_many_short_lines"),
        ("terminal_punctuation_lines", config.min_terminal_punctuation_lines, _below, "too_few_terminal_punctuation_lines"),
        ("duplicate_lines", config.max_duplicate_lines, _above, "duplicate_lines"),
        ("duplicate_line_chars", config.max_duplicate_line_chars, _above, "duplicate_line_chars"),
        ("duplicate_paragraphs", config.max_duplicate_paragraphs, _above, "duplicate_paragraphs"),
        ("duplicate_paragraph_chars", config.max_duplicate_paragraph_chars, _above, "duplicate_paragraph_chars"),
    ]
    table += [(f"top_{n}gram_chars", bound, _above, f"top_{n}gram_repetition") for n, bound in sorted(config.max_top_ngram_chars.items())]
    table += [(f"duplicate_{n}gram_chars", bound, _above, f"duplicate_{n}gram_repetition") for n, bound in sorted(config.max_duplicate_ngram_chars.items())]
    return [Check(metric, float(bound), fails, reason) for metric, bound, fails, reason in table if bound is not None]


def judge(text: str, config: QualityConfig, checks: list[Check]) -> tuple[bool, str | None, float | None, dict[str, float]]:
    """`(keep, reason, score, stats)`: the first failing check decides; all stats come back."""
    stats = text_stats(text, config)
    for check in checks:
        value = stats.get(check.metric)
        if value is not None and check.fails(value, check.threshold):
            return False, check.reason, value, stats
    return True, None, None, stats


class QualityFilterFn(FilterDoFn):
    stage = STAGE

    def __init__(self, config: QualityConfig, reject_text_chars: int = 2000):
        self.config = config
        self.reject_text_chars = reject_text_chars
        self.checks = build_checks(config)

    def process_record(self, record: Record) -> tuple[Record | None, Reject | None]:
        if record.kind == "json" and not self.config.apply_to_json:
            return record, None
        keep, reason, score, stats = judge(record.text, self.config, self.checks)
        scored = record.model_copy(update={"quality": stats})
        if keep:
            return scored, None
        threshold = next(c.threshold for c in self.checks if c.reason == reason)
        return None, reject_record(scored, STAGE, reason, score=score, threshold=threshold,
                                   detail=f"{reason}: {score:.4g} vs {threshold:.4g}", max_chars=self.reject_text_chars)


class QualityFilter(beam.PTransform):
    """PCollection[Record] -> outputs `kept` (scored Record) and `rejected` (Reject with score)."""

    def __init__(self, config: QualityConfig, reject_text_chars: int = 2000):
        super().__init__()
        self.config = config
        self.reject_text_chars = reject_text_chars

    def expand(self, records):
        return records | "Filter" >> beam.ParDo(
            QualityFilterFn(self.config, self.reject_text_chars)).with_outputs(REJECTED, main="kept")
