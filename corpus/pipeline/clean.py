"""Stage 2, clean: repair (ftfy), normalise (NFC/NFKC), drop control characters, optionally
turn HTML into text, tidy whitespace. Structured samples have every string value cleaned
(keys are left alone: they are the sample's schema). A sample left empty is rejected.
"""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

import ftfy
from ftfy.chardata import HTML_ENTITY_RE

from corpus.pipeline.mojibake import fix_latin_ligatures, is_bad
from corpus.pipeline.read import json_text_view
from corpus.pipeline.stage import RecordFilter, reject_record
from schemas import Record, Reject
from schemas.build_config import CleanConfig

try:
    from corpus.pipeline._text_units import tidy_whitespace as _compiled_tidy_whitespace
except ImportError:  # not built (optional extension): the regexes run instead
    _compiled_tidy_whitespace = None

STAGE = "clean"

# Cc and Cf characters other than newline and tab (zero-width joiners in emoji are Cf but
# rare in corpora; soft hyphens and BOMs are what this usually removes).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\ufeff]")
_SPACE_RUN = re.compile(r"[ \t\u00a0\u3000]+")  # U+3000: ideographic space
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_LEADING_SPACE = re.compile(r"\n[ \t]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_HTML_HINT = re.compile(r"</?(html|body|div|p|br|span|table|tr|td|li|ul|h[1-6]|a)\b[^>]*>", re.IGNORECASE)
_BLOCK_TAGS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "section", "article"}


class _TextExtractor(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def looks_like_html(text: str, min_tags: int = 3) -> bool:
    """True when the text holds at least `min_tags` common HTML tags."""
    return len(_HTML_HINT.findall(text, 0, 100_000)) >= min_tags


def html_to_text(text: str) -> str:
    """Visible text of an HTML document; block tags become line breaks."""
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts)


def repair_text(text: str) -> str:
    """ftfy's repairs. Most text has nothing to repair: ftfy's own badness test (what its
    encoding fix starts with) plus a look for HTML entities (ftfy's own pattern) and terminal
    escapes picks the texts that need the full, slow pass; the rest only get their Latin
    ligatures split. The badness test and the ligature split are `mojibake.py`'s exact, faster
    equivalents of ftfy's.
    Width and quote "fixes" stay off: they would turn Chinese punctuation (，“”) into ASCII,
    and the normal form is applied separately, as configured.
    """
    if "\x1b" in text or HTML_ENTITY_RE.search(text):
        return ftfy.fix_text(text, normalization=None, fix_character_width=False, uncurl_quotes=False)
    if text.isascii():  # mojibake and ligatures are non-ASCII by definition: nothing to do
        return text
    if is_bad(text):
        return ftfy.fix_text(text, normalization=None, fix_character_width=False, uncurl_quotes=False)
    return fix_latin_ligatures(text)


def clean_text(text: str, config: CleanConfig) -> str:
    """One string through every enabled cleaning step, in a fixed order."""
    if config.html_to_text and looks_like_html(text):
        text = html_to_text(text)
    if config.fix_text:
        text = repair_text(text)
    if config.normalization != "none":
        text = unicodedata.normalize(config.normalization, text)
    if config.remove_control_chars:
        text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    if config.tidy_whitespace:
        text = tidy_whitespace(text)
    return text


def tidy_whitespace(text: str) -> str:
    """Runs of spaces, tabs, no-break and ideographic spaces become one space; spaces at line
    ends and starts go; at most one blank line in a row; no whitespace around the text.
    Compiled (`_text_units.tidy_whitespace`) when built."""
    if _compiled_tidy_whitespace is None:
        return python_tidy_whitespace(text)
    return _compiled_tidy_whitespace(text).strip()


def python_tidy_whitespace(text: str) -> str:
    """`tidy_whitespace`'s definition."""
    text = _SPACE_RUN.sub(" ", text)
    text = _TRAILING_SPACE.sub("\n", text)
    text = _LEADING_SPACE.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def clean_value(value, config: CleanConfig):
    """Clean every string inside a json value; keys and non-strings are kept as they are."""
    if isinstance(value, str):
        return clean_text(value, config)
    if isinstance(value, dict):
        return {key: clean_value(child, config) for key, child in value.items()}
    if isinstance(value, list):
        return [clean_value(child, config) for child in value]
    return value


class CleanText(RecordFilter):
    stage = STAGE

    def __init__(self, config: CleanConfig, reject_text_chars: int = 2000):
        self.config = config
        self.reject_text_chars = reject_text_chars

    def process_record(self, record: Record) -> tuple[Record | None, Reject | None]:
        if record.kind == "json":
            data = clean_value(record.data, self.config)
            cleaned = record.model_copy(update={"data": data, "text": json_text_view(data)})
            return cleaned, None  # an all-empty json sample is judged by escape/validate
        text = clean_text(record.text, self.config)
        if not text:
            return None, reject_record(record, STAGE, "empty_after_clean", detail="nothing left after cleaning",
                                       max_chars=self.reject_text_chars)
        return record.model_copy(update={"text": text}), None
