"""PII: emails, phone numbers (Chinese mobile and landline, international forms), Chinese
resident identity numbers (18 digits, checksum verified), bank card numbers (Luhn verified)
and IPv4/IPv6 addresses, found by pattern and verified where a check digit or a parser can
tell a real one from a look-alike (dates, order numbers, version strings). Each match is
replaced by its type's placeholder (`[EMAIL]` by default: no `<`, so CPM-Bee's escaping leaves
it alone and it never reads as a special token), or the document is rejected
(`contains_pii`, counts per type in `detail`). Counts per type are kept on the record (`pii`).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from typing import Any

from corpus.pipeline.stage import RecordFilter, reject_record
from schemas import Record, Reject
from schemas.build_config import PII_TYPES, PiiConfig

STAGE = "pii"
CONTAINS_PII = "contains_pii"

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])", re.ASCII)
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9A-Za-z])", re.ASCII)
_BANK_CARD = re.compile(r"(?<![\d-])[3-6]\d{3}(?:[ -]?\d{1,4}){3,4}(?![\d-])", re.ASCII)
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"(?:\+?86[ -]?)?1[3-9]\d(?:\d{8}|[ -]\d{4}[ -]\d{4})"          # Chinese mobile: 13812345678, 138 1234 5678, +86 ...
    r"|(?:\+86[ -]?)?(?:0\d{2,3}-|\(0\d{2,3}\)[ -]?|（0\d{2,3}）)\d{7,8}(?:-\d{1,5})?"  # landline: 010-12345678, (0755)12345678
    r"|\+(?:[1-9]\d{0,2})(?:[ -]?\(?\d{1,4}\)?){2,5}"                # international: +1 415 555 0132, +44 (20) 7946 0958
    r"|\(\d{3}\) ?\d{3}-\d{4}|\d{3}-\d{3}-\d{4}"                     # North American: (415) 555-0132, 415-555-0132
    r")(?![\w])", re.ASCII)
_IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)", re.ASCII)
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])", re.ASCII)
_VERSION_BEFORE = re.compile(r"(?:version|ver\.?|v|版本|版本号)\s*[:：]?\s*$", re.IGNORECASE)  # \w, \d above: ASCII only, so 拨打13812345678 still matches
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_number_valid(number: str) -> bool:
    """GB 11643-1999 check digit of an 18-character resident identity number."""
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
    return _ID_CHECK[total % 11] == number[17].upper()


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        d = int(char)
        if index % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _phone_ok(match: str) -> bool:
    return 7 <= len(_digits(match)) <= 15


def _card_ok(match: str) -> bool:
    digits = _digits(match)
    return 15 <= len(digits) <= 19 and luhn_valid(digits)


def _ipv6_ok(match: str) -> bool:
    if match.count(":") < 2 or ("::" not in match and match.count(":") != 7):
        return False
    try:
        ipaddress.IPv6Address(match)
    except ValueError:
        return False
    groups = [part for part in match.split(":") if part]
    return len(groups) >= 2 and any(c.isdigit() for c in match)  # not C++'s a::b or dead::beef


# (type, pattern, verifier) in priority order: an earlier type's match wins an overlap
_FINDERS = (
    ("email", _EMAIL, None),
    ("ip", _IPV6, _ipv6_ok),
    ("id_number", _ID_NUMBER, id_number_valid),
    ("bank_card", _BANK_CARD, _card_ok),
    ("phone", _PHONE, _phone_ok),
    ("ip", _IPV4, None),
)


def find_pii(text: str, types: tuple[str, ...] | list[str] = PII_TYPES) -> list[tuple[int, int, str]]:
    """Non-overlapping `(start, end, type)` spans of PII in `text`, in text order."""
    taken: list[tuple[int, int, str]] = []
    for kind, pattern, verify in _FINDERS:
        if kind not in types:
            continue
        for match in pattern.finditer(text):
            start, end = match.span()
            if verify is not None and not verify(match.group()):
                continue
            if pattern is _IPV4 and _VERSION_BEFORE.search(text[max(0, start - 12):start]):
                continue  # "version 1.2.3.4"
            if any(start < e and s < end for s, e, _ in taken):
                continue
            taken.append((start, end, kind))
    return sorted(taken)


def redact(text: str, config: PiiConfig) -> tuple[str, Counter]:
    """`text` with each PII match replaced by its placeholder, and the counts per type."""
    spans = find_pii(text, config.types)
    if not spans:
        return text, Counter()
    parts, last = [], 0
    for start, end, kind in spans:
        parts += [text[last:start], config.placeholders[kind]]
        last = end
    parts.append(text[last:])
    return "".join(parts), Counter(kind for _, _, kind in spans)


def _redact_values(value: Any, config: PiiConfig) -> Any:
    """Redact the string values of a structured sample (keys are left alone)."""
    if isinstance(value, str):
        return redact(value, config)[0]
    if isinstance(value, dict):
        return {key: _redact_values(item, config) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_values(item, config) for item in value]
    return value


def format_counts(counts: Counter | dict[str, int]) -> str:
    """`email=2, phone=1` (sorted by type); `parse_counts` reads it back."""
    return ", ".join(f"{kind}={n}" for kind, n in sorted(counts.items()))


def parse_counts(detail: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for part in detail.split(":", 1)[-1].split(","):
        kind, _, n = part.strip().partition("=")
        if kind in PII_TYPES and n.isdigit():
            counts[kind] = int(n)
    return counts


class RedactPii(RecordFilter):
    stage = STAGE

    def __init__(self, config: PiiConfig, reject_text_chars: int = 2000):
        self.config = config
        self.reject_text_chars = reject_text_chars

    def process_record(self, record: Record) -> tuple[Record | None, Reject | None]:
        if not self.config.enabled:
            return record, None
        text, counts = redact(record.text, self.config)
        if not counts:
            return record, None
        if self.config.action == "reject":
            return None, reject_record(record, STAGE, CONTAINS_PII, score=float(sum(counts.values())),
                                       detail=f"PII found: {format_counts(counts)}", max_chars=self.reject_text_chars)
        update: dict[str, Any] = {"text": text, "pii": dict(sorted(counts.items()))}
        if record.data is not None:
            update["data"] = _redact_values(record.data, self.config)
        return record.model_copy(update=update), None
