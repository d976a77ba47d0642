"""Fast, exact stand-ins for the two ftfy checks the clean stage runs on every non-ASCII text.

- `is_bad(text) == ftfy.badness.is_bad(text)`: ftfy's badness regex tries its ~37 alternatives
  at every position of the text (about 0.1 µs a character: the clean stage's largest cost).
  Every alternative must match at least one character of a small set (derived below from the
  regex itself: per alternative, its rarest required non-ASCII character class), and no match
  is longer than `_WIDTH` characters, so a match can only lie within `_WIDTH - 1` characters of
  such a character. The regex runs only on those windows (`Pattern.search(text, pos, endpos)`:
  `^` still means the real start of the text, and the pattern asserts nothing about what lies
  outside a match). Most texts hold none of the characters and cost one character-class scan.
- `fix_latin_ligatures(text) == ftfy.fixes.fix_latin_ligatures(text)`: `str.translate` looks
  every character up in ftfy's table; a scan for the table's characters skips texts without any.

If a future ftfy's regex does not have the shape the derivation needs (one alternation whose
every branch has a required, purely non-ASCII character class; a bounded width; no flags that
change what a character class matches), `is_bad` is ftfy's own, unchanged.
"""

from __future__ import annotations

import re

from ftfy.badness import BADNESS_RE
from ftfy.badness import is_bad as ftfy_is_bad
from ftfy.chardata import LIGATURES

try:  # Python's own regex parser (private modules): without them, ftfy's own check runs
    from re import _constants as sre_constants
    from re import _parser as sre_parser
except ImportError:  # pragma: no cover - a Python without them
    sre_constants = sre_parser = None

MAX_WINDOW = 64  # a wider badness match would make windows pointless: ftfy's own check then
_LIGATURE_CHARS = re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(LIGATURES)) + "]")


def _literal_chars(item) -> set[int] | None:
    """The code points a LITERAL or a plain character class matches; None for anything else
    (categories such as \\w, negated classes, repeats, groups, anchors)."""
    op, value = item
    if op is sre_constants.LITERAL:
        return {value}
    if op is not sre_constants.IN:
        return None
    chars: set[int] = set()
    for member, argument in value:
        if member is sre_constants.LITERAL:
            chars.add(argument)
        elif member is sre_constants.RANGE:
            chars.update(range(argument[0], argument[1] + 1))
        else:
            return None
    return chars


def required_chars(pattern: re.Pattern) -> tuple[str, int] | None:
    """(a character class every match of `pattern` has a character of, the longest match), or
    None when the pattern is not a flat alternation this can be proved for."""
    if sre_parser is None or pattern.flags & (re.IGNORECASE | re.MULTILINE | re.ASCII):
        return None
    try:
        tree = sre_parser.parse(pattern.pattern, pattern.flags)
        width = tree.getwidth()[1]
    except Exception:  # noqa: BLE001 - a private parser's shape changed: no shortcut, never a crash
        return None
    if width > MAX_WINDOW:
        return None
    if len(tree) == 1 and tree[0][0] is sre_constants.BRANCH:
        branches = tree[0][1][1]
    else:
        branches = [tree]
    union: set[int] = set()
    for branch in branches:
        # each top-level item of a branch is required; a purely non-ASCII one can be searched for
        candidates = [chars for chars in map(_literal_chars, branch) if chars and min(chars) >= 128]
        if not candidates:
            return None
        union |= min(candidates, key=len)
    return "[" + "".join(re.escape(chr(c)) for c in sorted(union)) + "]", width


_REQUIRED = required_chars(BADNESS_RE)
_ANCHORS = re.compile(_REQUIRED[0]) if _REQUIRED else None
_WIDTH = _REQUIRED[1] if _REQUIRED else 0


def is_bad(text: str) -> bool:
    """`ftfy.badness.is_bad(text)`, searching only around the characters every match needs."""
    if _ANCHORS is None:
        return ftfy_is_bad(text)
    reach = _WIDTH - 1
    start = end = -1  # the window being grown: [start, end)
    for found in _ANCHORS.finditer(text):
        position = found.start()
        if position - reach >= end:  # this anchor's window does not touch the current one
            if end >= 0 and BADNESS_RE.search(text, start, end):
                return True
            start = max(0, position - reach)
        end = position + reach + 1
    return end >= 0 and BADNESS_RE.search(text, start, end) is not None


def fix_latin_ligatures(text: str) -> str:
    """`ftfy.fixes.fix_latin_ligatures(text)`, without the per-character lookups when there is
    no ligature to split."""
    return text.translate(LIGATURES) if _LIGATURE_CHARS.search(text) else text
