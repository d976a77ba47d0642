"""Stage 4, quality filter: heuristics from Gopher, C4 and FineWeb, adapted to Chinese by
counting characters where words do not apply. Every metric is computed and kept on the record
(`record.quality`); the first failing filter rejects it with its reason, score and threshold.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from corpus.pipeline.stage import REJECTED, FilterDoFn, reject_record
from corpus.pipeline.units import count_cjk, count_latin_letters, is_cjk, tokens
from schemas import Record, Reject
from schemas.build_config import QualityConfig

STAGE = "quality"
_BULLETS = ("•", "-", "*", "·", "‣", "◦", "●", "▪", "–", "—", "→")
_ELLIPSES = ("...", "…")
_TERMINAL = (".", "!", "?", "。", "！", "？", '"', "”", "」", "』")
MIN_LATIN_WORDS_FOR_LENGTH = 10
_SPACE = re.compile(r"\s+")
_NOT_LETTER = re.compile(r"[\W\d_]+")
_NOT_DIGIT = re.compile(r"\D+")  # mean word length says little about a handful of words


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


def _ngram_ids(token_ids: np.ndarray, n: int) -> np.ndarray:
    """One 64-bit id per n-gram (polynomial hash of token ids; collisions are negligible here)."""
    ids = np.zeros(len(token_ids) - n + 1, dtype=np.uint64)
    for offset in range(n):
        ids = ids * np.uint64(1_000_003) + token_ids[offset:len(token_ids) - n + 1 + offset]
    return ids


def _top_ngram_chars(token_ids: np.ndarray, lengths: np.ndarray, n: int, total_chars: int) -> float:
    """Characters covered by the most frequent n-gram (all its occurrences), over all token characters."""
    if len(token_ids) < n or total_chars == 0:
        return 0.0
    _, first, counts = np.unique(_ngram_ids(token_ids, n), return_index=True, return_counts=True)
    top = int(counts.max())
    if top < 2:
        return 0.0
    start = int(first[counts == top].min())  # ties: the n-gram that occurs first in the text
    return float(top * lengths[start:start + n].sum()) / total_chars


def _duplicate_ngram_chars(token_ids: np.ndarray, lengths: np.ndarray, n: int, total_chars: int) -> float:
    """Characters of tokens covered by any n-gram that occurs more than once (Gopher)."""
    if len(token_ids) < n or total_chars == 0:
        return 0.0
    _, inverse, counts = np.unique(_ngram_ids(token_ids, n), return_inverse=True, return_counts=True)
    repeated = (counts[inverse] > 1).astype(np.int64)  # n-grams starting at each position
    # token i is covered when a repeated n-gram starts in [i - n + 1, i]
    starts = np.concatenate([np.cumsum(repeated), np.full(n - 1, repeated.sum())])
    window = starts - np.concatenate([np.zeros(n, dtype=np.int64), starts[:-n]])
    return float(lengths[window > 0].sum()) / total_chars


def text_stats(text: str, config: QualityConfig) -> dict[str, float]:
    """Every quality metric of `text` that the config asks for, by name."""
    toks = tokens(text)
    total_token_chars = sum(map(len, toks))
    # counts by deleting the other characters: one C-level pass each instead of a Python loop
    non_space = max(1, len(_SPACE.sub("", text)))
    letters = len(_NOT_LETTER.sub("", text))
    digits = len(_NOT_DIGIT.sub("", text))
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    latin_words = [t for t in toks if not is_cjk(t) and not t.isdigit()]
    stats: dict[str, float] = {
        "tokens": float(len(toks)),
        "symbol_ratio": (text.count("#") + sum(text.count(e) for e in _ELLIPSES)) / max(1, len(toks)),
        "digit_ratio": digits / non_space,
        "letter_ratio": letters / non_space,
        "target_script_ratio": (count_cjk(text) + count_latin_letters(text)) / letters if letters else 1.0,
        "bullet_lines": sum(line.startswith(_BULLETS) for line in lines) / max(1, len(lines)),
        "ellipsis_lines": sum(line.endswith(_ELLIPSES) for line in lines) / max(1, len(lines)),
        "terminal_punctuation_lines": sum(line.endswith(_TERMINAL) for line in lines) / max(1, len(lines)),
    }
    if config.max_short_lines is not None:  # tokenising every line separately is costly: only when asked
        stats["short_lines"] = sum(len(tokens(line)) < 4 for line in lines) / max(1, len(lines))
    if len(latin_words) >= MIN_LATIN_WORDS_FOR_LENGTH:
        stats["mean_word_length"] = sum(map(len, latin_words)) / len(latin_words)
    stats["duplicate_lines"], stats["duplicate_line_chars"] = _duplicate_fractions(lines)
    stats["duplicate_paragraphs"], stats["duplicate_paragraph_chars"] = _duplicate_fractions(paragraphs)
    vocabulary: dict[str, int] = {}
    token_ids = np.array([vocabulary.setdefault(t, len(vocabulary)) for t in toks], dtype=np.uint64)
    lengths = np.array([len(t) for t in toks], dtype=np.int64)
    for n in sorted(config.max_top_ngram_chars):
        stats[f"top_{n}gram_chars"] = _top_ngram_chars(token_ids, lengths, n, total_token_chars)
    for n in sorted(config.max_duplicate_ngram_chars):
        stats[f"duplicate_{n}gram_chars"] = _duplicate_ngram_chars(token_ids, lengths, n, total_token_chars)
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
