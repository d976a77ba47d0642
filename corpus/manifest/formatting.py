"""How numbers and values of a manifest are written for people: shares, point changes, counts."""

from __future__ import annotations

import json
from typing import Any

UNKNOWN = "unknown"
ABSENT = "—"
_FINGERPRINT_CHARS = 12  # enough to tell two builds apart at a glance; JSON output keeps all


def percent_number(share: float | None) -> float | None:
    """A share (0..1) as a number of percent, for JSON; None stays None."""
    return None if share is None else share * 100


def percent(share: float | None) -> str:
    """A share (0..1) as `12.34%`; None -> `unknown`."""
    return UNKNOWN if share is None else f"{share * 100:.2f}%"


def points(delta: float | None) -> str:
    """A share change (a fraction) in percentage points: `+1.25 pp`, `-0.50 pp`, `0 pp`."""
    if delta is None:
        return UNKNOWN
    value = delta * 100
    if abs(value) < 5e-3:
        # Non-zero but below display precision: say so rather than print a misleading 0.00.
        return "0 pp" if value == 0 else ("+<0.01 pp" if value > 0 else "-<0.01 pp")
    return f"{value:+.2f} pp"


def count(value: int | None) -> str:
    """`1,234,567`; None -> `unknown`."""
    return UNKNOWN if value is None else f"{value:,}"


def count_change(old: int | None, new: int | None) -> str:
    """`1,000 → 1,200 (+200)`, or just the value when it did not change."""
    if old == new:
        return count(new)
    delta = "" if old is None or new is None else f" ({new - old:+,})"
    return f"{count(old)} → {count(new)}{delta}"


def datasets(n: int) -> str:
    """`1 dataset`, `3 datasets`."""
    return f"{n:,} dataset" + ("" if n == 1 else "s")


def short_fingerprint(value: str | None) -> str:
    if value is None:
        return ABSENT
    return value if len(value) <= _FINGERPRINT_CHARS else value[:_FINGERPRINT_CHARS] + "…"


def value_text(value: Any, limit: int = 160) -> str:
    """A setting as compact JSON (`[0.5, 0.5]`, `"data/wiki"`), cut at `limit` characters."""
    if value is None:
        return ABSENT
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def field_change_text(name: str, old: Any, new: Any, limit: int = 160) -> str:
    """`weight: 1.0 → 2.0`; fingerprints are shortened."""
    if name.startswith("fingerprints."):
        return f"{name}: {short_fingerprint(old)} → {short_fingerprint(new)}"
    return f"{name}: {value_text(old, limit)} → {value_text(new, limit)}"
