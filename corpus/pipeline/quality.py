"""Stage 4, quality filter: heuristics from Gopher, C4 and FineWeb, adapted to Chinese by
counting characters where words do not apply. Every metric is computed and kept on the record
(`record.quality`); the first failing filter rejects it with its reason, score and threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat

from corpus.pipeline.stage import RecordFilter, reject_record
from corpus.pipeline.text_counts import text_counts
from corpus.pipeline.units import text_units
from schemas import Record, Reject
from schemas.build_config import QualityConfig

STAGE = "quality"
_BULLETS = ("•", "-", "*", "·", "‣", "◦", "●", "▪", "–", "—", "→")
_ELLIPSES = ("...", "…")
_TERMINAL = (".", "!", "?", "。", "！", "？", '"', "”", "」", "』")
MIN_LATIN_WORDS_FOR_LENGTH = 10


def _duplicate_fractions(parts: list[str]) -> tuple[float, float]:
    """(fraction of parts that repeat an earlier one, fraction of characters in them). Each
    distinct part's first occurrence is the only one that is not a repeat, so the repeats are
    all parts less the distinct ones, in number and in characters."""
    if not parts:
        return 0.0, 0.0
    distinct = set(parts)
    chars = sum(map(len, parts))
    return (len(parts) - len(distinct)) / len(parts), (chars - sum(map(len, distinct))) / max(1, chars)


def _count_lines(lines: list[str], method, affixes: tuple[str, ...]) -> int:
    """How many `lines` start (`method=str.startswith`) or end (`str.endswith`) with one of `affixes`."""
    return sum(map(method, lines, repeat(affixes, len(lines))))


def text_stats(text: str, config: QualityConfig) -> dict[str, float]:
    """Every quality metric of `text` that the config asks for, by name."""
    top_sizes, duplicate_sizes = tuple(config.max_top_ngram_chars), tuple(config.max_duplicate_ngram_chars)
    counts = text_counts(text, top_sizes, duplicate_sizes)
    non_space = max(1, counts.non_space)
    lines = [line for line in map(str.strip, text.split("\n")) if line]
    paragraphs = [p for p in map(str.strip, text.split("\n\n")) if p]
    line_count = max(1, len(lines))
    stats: dict[str, float] = {
        "tokens": float(counts.tokens),
        "symbol_ratio": (text.count("#") + sum(text.count(e) for e in _ELLIPSES)) / max(1, counts.tokens),
        "digit_ratio": counts.digits / non_space,
        "letter_ratio": counts.letters / non_space,
        "target_script_ratio": (counts.cjk_tokens + counts.latin_letters) / counts.letters if counts.letters else 1.0,
        "bullet_lines": _count_lines(lines, str.startswith, _BULLETS) / line_count,
        "ellipsis_lines": _count_lines(lines, str.endswith, _ELLIPSES) / line_count,
        "terminal_punctuation_lines": _count_lines(lines, str.endswith, _TERMINAL) / line_count,
    }
    if config.max_short_lines is not None:  # tokenising every line separately is costly: only when asked
        stats["short_lines"] = sum(len(text_units(line)) < 4 for line in lines) / line_count
    if counts.latin_words >= MIN_LATIN_WORDS_FOR_LENGTH:
        stats["mean_word_length"] = counts.latin_word_chars / counts.latin_words
    stats["duplicate_lines"], stats["duplicate_line_chars"] = _duplicate_fractions(lines)
    stats["duplicate_paragraphs"], stats["duplicate_paragraph_chars"] = _duplicate_fractions(paragraphs)
    token_chars = counts.token_chars
    for n, chars in zip(top_sizes, counts.top_ngram_chars):
        stats[f"top_{n}gram_chars"] = chars / token_chars if token_chars else 0.0
    for n, chars in zip(duplicate_sizes, counts.duplicate_ngram_chars):
        stats[f"duplicate_{n}gram_chars"] = chars / token_chars if token_chars else 0.0
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


class QualityFilter(RecordFilter):
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
