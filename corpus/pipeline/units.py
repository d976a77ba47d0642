"""Text units shared by the quality filters and MinHash shingles: a word for Latin-script
text, a single character for CJK text (which has no spaces), so mixed text is handled and
unspaced Chinese never collapses into one giant "word".
"""

from __future__ import annotations

import re

# Han (with extensions A and compatibility), kana, Hangul syllables, CJK punctuation excluded.
CJK_CHARS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK = f"[{CJK_CHARS}]"
_WORD = f"[^\\W{CJK_CHARS}]+"
_TOKEN = re.compile(f"{_CJK}|{_WORD}")
_WORD_RE = re.compile(_WORD)
_CJK_RE = re.compile(_CJK)


def text_units(text: str) -> list[str]:
    """The text units of `text`, in order: words (runs of letters/digits) of non-CJK text and
    single CJK characters."""
    return _TOKEN.findall(text)


def words_of(text: str) -> list[str]:
    """The non-CJK tokens of `text` (what `text_units` gives minus the CJK characters), in order."""
    return _WORD_RE.findall(text)


def jieba_text_units(text: str) -> list[str]:
    """Like `text_units`, but CJK runs cut into jieba words. Raises ImportError without jieba."""
    import jieba  # optional: only when `near_dedupe.shingles: jieba`

    out: list[str] = []
    for word in jieba.lcut(text):
        out.extend([word] if _CJK_RE.match(word) else text_units(word))
    return out
