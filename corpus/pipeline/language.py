"""Language identification with cld2 (pycld2, which ships its model): every document gets its
main language and the share of its identified text in that language; with `keep` set, a
document whose share of text in the kept languages is under `min_score` is rejected
(`wrong_language`). Shares, not the top label, decide: a Chinese text full of English terms
is mostly zh + en and is kept. cld2 raises on some input (e.g. some control characters):
such text is retried without them, then labelled `un` (unknown), never a crash. Text cld2
identifies no language in (numbers, symbols, a few words) is labelled `un` and kept unless
`reject_unknown`: the quality filter judges it on what it is, not on a guess.
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple

import pycld2

from corpus.pipeline.stage import RecordFilter, reject_record
from schemas import Record, Reject
from schemas.build_config import LanguageConfig

STAGE = "language"
UNKNOWN = "un"
WRONG_LANGUAGE = "wrong_language"


class Identified(NamedTuple):
    """cld2's answer: main language, its share, share per language (of the identified text)."""

    language: str
    score: float
    shares: dict[str, float]
    error: str = ""


def _without_control_chars(text: str) -> str:
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cs", "Co", "Cn"))


def identify(text: str) -> Identified:
    """The language shares of `text` as cld2 sees them; `un` with score 0 when it sees none."""
    error = ""
    for candidate in (text, None):
        try:
            if candidate is None:
                candidate = _without_control_chars(text)
            _, _, details = pycld2.detect(candidate.encode("utf-8", "replace"))
            break
        except pycld2.error as exc:  # invalid UTF-8 for cld2 (control characters, odd code points)
            error = f"cld2: {exc}"
    else:
        return Identified(UNKNOWN, 0.0, {}, error)
    percents: dict[str, int] = {}
    for _, code, percent, _ in details:
        if code != UNKNOWN and percent > 0:
            percents[code] = percents.get(code, 0) + percent
    total = sum(percents.values())
    if not total:
        return Identified(UNKNOWN, 0.0, {}, error)
    shares = {code: percent / total for code, percent in percents.items()}
    main = max(shares, key=lambda code: (shares[code], code))
    return Identified(main, round(shares[main], 4), shares, error)


def is_kept(code: str, keep: list[str]) -> bool:
    """`zh` keeps `zh` and `zh-Hant`."""
    return any(code == k or code.startswith(k + "-") for k in keep)


def kept_share(identified: Identified, keep: list[str]) -> float:
    """Share of the identified text in kept languages (0.0 when cld2 identified none)."""
    return round(float(sum(share for code, share in identified.shares.items() if is_kept(code, keep))), 4)


def _describe(identified: Identified) -> str:
    """`de 90%, en 10%` (main language first; `main_language` reads it back) and any cld2 error."""
    shares = ", ".join(f"{code} {share:.0%}" for code, share in sorted(identified.shares.items(), key=lambda kv: -kv[1]))
    return (shares or "no language identified") + (f" ({identified.error})" if identified.error else "")


def main_language(detail: str) -> str:
    """The main language named by a `wrong_language` reject's detail (see `_describe`)."""
    first = detail.split(" ", 1)[0].rstrip(",;")
    return first if first and first != "no" else UNKNOWN


class IdentifyLanguage(RecordFilter):
    stage = STAGE

    def __init__(self, config: LanguageConfig, reject_text_chars: int = 2000):
        self.config = config
        self.reject_text_chars = reject_text_chars

    def process_record(self, record: Record) -> tuple[Record | None, Reject | None]:
        if not self.config.enabled:
            return record, None
        identified = identify(record.text)
        labelled = record.model_copy(update={"language": identified.language, "language_score": identified.score})
        keep = self.config.keep
        if keep is None or (record.kind == "json" and not self.config.apply_to_json):
            return labelled, None
        if not identified.shares and not self.config.reject_unknown:
            return labelled, None  # numbers, symbols, very short text: `un`, left to the quality filter
        share = kept_share(identified, keep)
        if share >= self.config.min_score:
            return labelled, None
        return None, reject_record(labelled, STAGE, WRONG_LANGUAGE, score=share, threshold=self.config.min_score,
                                   detail=f"{_describe(identified)}; kept languages {', '.join(keep)}: {share:.0%}",
                                   max_chars=self.reject_text_chars)
