"""Greedy longest-match segmentation of plain text over a fixed token set, in pure Python.

CPM-Bee tokenizes plain text by taking, at each position, the longest vocabulary token that
starts there; a character where no token starts is unknown, and consecutive unknown characters
form one unknown span. The reference tries every length from 32 down to 1 at each position.
Two things make this ~20-40x faster while giving the same answer:

- A prefix table: every prefix of every token maps to the longest token that is a prefix of it
  (packed as `id << shift | length`, 0 when there is none). Walking forward one character at a
  time until the text leaves the table costs about (token length + 1) dict lookups, not 32.
- A chunk cache: if a character never occurs inside a token (only at its start), no token can
  cross the place where it begins, so text splits there into chunks that segment independently.
  For the official vocabulary the space is such a character, so English splits into words,
  which repeat, and a repeated word costs one dict lookup. Chunks are cached up to a bound.

That is still a Python loop per token, and short texts (one segment of a sample) pay a per-call
cost. `_longest_match.c` is the same algorithm compiled (a character trie in one hash table),
about 10x faster again; `build_matcher` uses it when it was built (`pip install -e .` builds it)
and falls back to `PurePythonMatcher` otherwise. Both give identical results (tests check both).
The extension also has `CompiledEncoder`, the tokenizer's whole `encode` (special tokens, ext
ids) over a compiled trie in one call; tokenizer.py uses it with the compiled engine.
"""

from __future__ import annotations

import re
from typing import Literal, Protocol

try:
    from tokenization._longest_match import Encoder as CompiledEncoder
    from tokenization._longest_match import Trie as _CompiledTrie
except ImportError:  # not built (or an old build): pure Python (correct, slower)
    _CompiledTrie = CompiledEncoder = None

Engine = Literal["auto", "c", "python"]

# Only short chunks are worth caching (words); long ones (a Chinese line) rarely repeat.
_MAX_CACHED_CHUNK = 32
_MAX_CACHE_ENTRIES = 200_000
# A character to end each chunk with, so the walk stops without a bounds check.
_SENTINEL_CANDIDATES = ("\U0010ffff", "\uffff", "\x00", "\ufffe")


class Matcher(Protocol):
    """What the tokenizer needs from an engine."""

    def segment(self, text: str) -> tuple[list[int], list[tuple[int, str]]]:
        """(ids with -1 per unknown span, [(index in ids, span text)]) for plain text."""
        ...

    def plain_ids(self, text: str) -> list[int] | None:
        """The ids when text has no `<` and no unknown span (the common case), else None."""
        ...


def compiled_available() -> bool:
    """True when the C engine was built."""
    return _CompiledTrie is not None


def build_matcher(pieces: dict[str, int], engine: Engine = "auto") -> Matcher:
    """A longest-match segmenter over `pieces` (token text -> id).

    Takes: pieces; engine: "c" (compiled), "python", or "auto" (compiled when built).
    Returns: an object with `segment(text) -> (ids, unknown)`.
    Raises: RuntimeError for engine="c" when the extension is not built; ValueError for an
    empty token.
    """
    if engine == "auto":
        engine = "c" if _CompiledTrie is not None else "python"
    if engine == "c":
        if _CompiledTrie is None:
            raise RuntimeError("tokenization._longest_match is not built; run `pip install -e .`")
        if any(len(t) == 0 for t in pieces):
            raise ValueError("empty token in the matcher's token set")
        return _CompiledTrie(pieces)
    if engine == "python":
        return PurePythonMatcher(pieces)
    raise ValueError(f"unknown engine {engine!r}: use 'auto', 'c' or 'python'")


class PurePythonMatcher:
    """Segments text into token ids by greedy longest match, with unknown spans kept aside."""

    def __init__(self, pieces: dict[str, int]) -> None:
        """Takes: token text -> id for every token that may match inside plain text
        (non-empty strings; ids >= 0). Raises: ValueError on an empty token."""
        if any(len(t) == 0 for t in pieces):
            raise ValueError("empty token in the matcher's token set")
        max_len = max((len(t) for t in pieces), default=1)
        self._shift = max_len.bit_length()
        self._len_mask = (1 << self._shift) - 1
        all_prefixes = {t[:k] for t in pieces for k in range(1, len(t) + 1)}
        prefix: dict[str, int] = {}
        # Shortest first: the set is prefix-closed, so p[:-1] is settled before p.
        for p in sorted(all_prefixes, key=len):
            if p in pieces:
                prefix[p] = (pieces[p] << self._shift) | len(p)
            else:
                prefix[p] = prefix[p[:-1]] if len(p) > 1 else 0
        self._prefix = prefix
        self._sentinel = next(c for c in _SENTINEL_CANDIDATES if c not in prefix)
        inner = {c for t in pieces for c in t[1:]}
        # Chunk boundaries: ASCII characters that are tokens and never occur inside a token.
        breakers = sorted(c for c in pieces if len(c) == 1 and ord(c) < 128 and c not in inner)
        if breakers:
            cls = "".join(re.escape(c) for c in breakers)
            self._chunk_re: re.Pattern[str] | None = re.compile(f"[{cls}][^{cls}]*|[^{cls}]+")
        else:
            self._chunk_re = None
        self._cache: dict[str, tuple[tuple[int, ...], tuple[tuple[int, str], ...]]] = {}

    def segment(self, text: str) -> tuple[list[int], list[tuple[int, str]]]:
        """Segment plain text (no special-token syntax is interpreted here).

        Takes: the text.
        Returns: (ids, unknown) where ids has one entry per token and -1 where an unknown span
        stands, and unknown lists (index into ids, span text) for those spans, in order.
        """
        if self._chunk_re is None or len(text) <= _MAX_CACHED_CHUNK:
            ids, unk = self._segment_chunk(text)
            return list(ids), list(unk)
        ids: list[int] = []
        unknown: list[tuple[int, str]] = []
        seg = self._segment_chunk
        extend = ids.extend
        for chunk in self._chunk_re.findall(text):
            chunk_ids, chunk_unk = seg(chunk)
            if chunk_unk:
                base = len(ids)
                unknown.extend((base + i, s) for i, s in chunk_unk)
            extend(chunk_ids)
        return ids, unknown

    def plain_ids(self, text: str) -> list[int] | None:
        """The ids when text has no `<` and no unknown span, else None (see Matcher)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        if "<" in text:
            return None
        ids, unknown = self.segment(text)
        return None if unknown else ids

    def _segment_chunk(self, text: str) -> tuple[tuple[int, ...], tuple[tuple[int, str], ...]]:
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        result = self._walk(text)
        if len(text) <= _MAX_CACHED_CHUNK:
            if len(self._cache) >= _MAX_CACHE_ENTRIES:
                self._cache.clear()
            self._cache[text] = result
        return result

    def _walk(self, text: str) -> tuple[tuple[int, ...], tuple[tuple[int, str], ...]]:
        get = self._prefix.get
        shift = self._shift
        len_mask = self._len_mask
        s = text + self._sentinel
        n = len(text)
        ids: list[int] = []
        append = ids.append
        unknown: list[tuple[int, str]] = []
        unk_start = -1
        p = 0
        while p < n:
            v = get(s[p])
            if v is not None:
                # Walk forward while still inside the prefix table; v keeps the best so far.
                e = p + 2
                w = get(s[p:e])
                while w is not None:
                    v = w
                    e += 1
                    w = get(s[p:e])
            if v:
                if unk_start >= 0:
                    unknown.append((len(ids), text[unk_start:p]))
                    append(-1)
                    unk_start = -1
                append(v >> shift)
                p += v & len_mask
            else:
                if unk_start < 0:
                    unk_start = p
                p += 1
        if unk_start >= 0:
            unknown.append((len(ids), text[unk_start:]))
            append(-1)
        return tuple(ids), tuple(unknown)
