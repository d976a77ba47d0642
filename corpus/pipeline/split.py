"""Stage 3, split: a txt sample longer than `max_length` characters is cut into as few pieces
as possible, each at most `max_length` long — at paragraph boundaries first, then at sentence
ends (Chinese and English punctuation), and only as a last resort mid-sentence; never inside
a `<...>` special token. Pieces (and unsplit txt samples) under `min_length` are dropped.
Structured (json) samples pass through untouched.
"""

from __future__ import annotations

import re

from apache_beam.metrics import Metrics

from corpus.pipeline.stage import METRICS_NAMESPACE, Stage, StageCounters, reject_record
from schemas import Record
from schemas.build_config import SplitConfig
from schemas.special_tokens import BOUNDED_TOKEN

STAGE = "split"

_PARAGRAPH = re.compile(r"[^\n]*\n+|[^\n]+$")
# A sentence ends after CJK terminal punctuation, or Latin terminal punctuation then space;
# closing quotes/brackets stay with the sentence they close.
_SENTENCE_END = re.compile(r"[。！？；!?]+[”’\"」』）)]*\s*|[.!?;]+[”’\"')\]]*\s+")


def _protected(text: str) -> list[tuple[int, int]]:
    return [match.span() for match in BOUNDED_TOKEN.finditer(text)]


def _inside(position: int, spans: list[tuple[int, int]]) -> tuple[int, int] | None:
    for start, end in spans:
        if start < position < end:
            return start, end
    return None


def _sentences(paragraph: str) -> list[str]:
    spans = _protected(paragraph)
    cuts = [m.end() for m in _SENTENCE_END.finditer(paragraph) if not _inside(m.end(), spans)]
    bounds = [0] + [c for c in cuts if 0 < c < len(paragraph)] + [len(paragraph)]
    return [paragraph[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def _hard_chunks(sentence: str, max_length: int) -> list[str]:
    """Cut an over-long sentence at whitespace near `max_length`, else exactly there, never in a token."""
    spans = _protected(sentence)
    chunks = []
    start = 0
    while len(sentence) - start > max_length:
        cut = start + max_length
        space = sentence.rfind(" ", start + max_length // 2, cut)
        if space > start:
            cut = space + 1
        token = _inside(cut, spans)
        if token is not None:
            cut = token[0] if token[0] > start else token[1]
        chunks.append(sentence[start:cut])
        start = cut
    chunks.append(sentence[start:])
    return chunks


def split_text(text: str, max_length: int) -> list[str]:
    """Pieces of `text`, each at most `max_length` characters (unless one special token is longer),
    in order, stripped, as few as the cut preferences allow. A short text comes back whole.
    """
    if len(text) <= max_length:
        return [text]
    units: list[str] = []
    for paragraph in _PARAGRAPH.findall(text):
        if len(paragraph) <= max_length:
            units.append(paragraph)
            continue
        for sentence in _sentences(paragraph):
            units.extend([sentence] if len(sentence) <= max_length else _hard_chunks(sentence, max_length))
    # Greedy packing of units in order gives the fewest pieces for this sequence of cut points.
    pieces: list[str] = []
    current = ""
    for unit in units:
        if current and len(current) + len(unit) > max_length:
            pieces.append(current)
            current = unit
        else:
            current += unit
    pieces.append(current)
    return [piece.strip() for piece in pieces if piece.strip()]


class SplitLongDocuments(Stage):
    """txt Record -> one Record per piece (`piece` = index); short pieces become rejects."""

    stage = STAGE

    def __init__(self, config: SplitConfig, reject_text_chars: int = 2000):
        self.config = config
        self.reject_text_chars = reject_text_chars

    def setup(self) -> None:
        self.counters = StageCounters(STAGE)
        self.counters.extra_pieces = Metrics.counter(METRICS_NAMESPACE, f"{STAGE}.extra_pieces")

    def process(self, record: Record):
        self.counters.records_in.inc()
        if record.kind != "text":
            self.counters.records_out.inc()
            yield record
            return
        pieces = split_text(record.text, self.config.max_length)
        # in + extra_pieces == out + dropped: the split stage's own balance
        self.counters.extra_pieces.inc(len(pieces) - 1)
        for index, piece in enumerate(pieces):
            out = record if len(pieces) == 1 else record.model_copy(update={"text": piece, "piece": index})
            if len(piece) < self.config.min_length:
                reason = "too_short" if len(pieces) == 1 else "too_short_piece"
                self.counters.dropped(reason)
                yield reject_record(
                    out, STAGE, reason, score=len(piece), threshold=self.config.min_length,
                    detail=f"{len(piece)} characters, fewer than min_length {self.config.min_length}",
                    max_chars=self.reject_text_chars)
            else:
                self.counters.records_out.inc()
                yield out
