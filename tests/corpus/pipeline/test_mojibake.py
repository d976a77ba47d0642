"""`mojibake.py`'s checks equal ftfy's on any text: the windowed badness search and the
ligature split, on generated text dense in the characters ftfy's badness regex looks at, on
mojibake made from real text, and at the edges (`^`, windows that touch or overlap)."""

from __future__ import annotations

import pytest
from ftfy.badness import MOJIBAKE_CATEGORIES
from ftfy.badness import is_bad as ftfy_is_bad
from ftfy.chardata import LIGATURES
from ftfy.fixes import fix_latin_ligatures as ftfy_fix_latin_ligatures
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.pipeline import mojibake


def _category_chars() -> list[str]:
    chars = []
    for members in MOJIBAKE_CATEGORIES.values():
        i = 0
        while i < len(members):  # "a-z" spans in the category strings are ranges
            if i + 2 < len(members) and members[i + 1] == "-":
                chars += [chr(c) for c in range(ord(members[i]), ord(members[i + 2]) + 1)]
                i += 3
            else:
                chars.append(members[i])
                i += 1
    return sorted(set(chars))


# Everything the regex names, plus its literal sequences' letters (Ã Â Ø à √ ≈ ‚ в β ā ...),
# ASCII letters, spaces and punctuation, CJK and ligatures, so that matches are frequent.
ALPHABET = _category_chars() + list("ÃÂÎÐØÙà√≈‚Äâóвυ€ЂВГРСўβΆΒΓΞΟā°²³×µ»ŠšŸžœŒ") + list("aZz .,?!\n\t") \
    + ["中", "文", "“", "”", "—", "…", "’"] + [chr(c) for c in LIGATURES]
texts = st.lists(st.sampled_from(ALPHABET), max_size=60).map("".join)


def test_the_shortcut_is_in_use_with_the_pinned_ftfy():
    assert mojibake._ANCHORS is not None and 2 <= mojibake._WIDTH <= mojibake.MAX_WINDOW


@settings(max_examples=5000, deadline=None)
@given(text=texts)
def test_is_bad_equals_ftfy(text: str):
    assert mojibake.is_bad(text) == ftfy_is_bad(text)


@settings(max_examples=300, deadline=None)
@given(text=texts, filler=st.integers(0, 20))
def test_is_bad_equals_ftfy_with_anchors_spread_out(text: str, filler: int):
    """Windows that are apart, touching or overlapping, and text before the first one."""
    spread = ("x" * filler).join(text)
    assert mojibake.is_bad(spread) == ftfy_is_bad(spread)


@pytest.mark.parametrize("text", [
    "Ã ", "x Ã ", "café", "cafÃ©", "The Mona Lisa doesnâ€™t have eyebrows.", "voilÃ le travail",
    "“引号”和……省略号——破折号", "¶ Permalink to this headline", "ГўВЂВ.A", "à²", "a" * 100 + "Ã©",
])
def test_is_bad_on_known_texts(text: str):
    assert mojibake.is_bad(text) == ftfy_is_bad(text)


def test_is_bad_on_real_text_read_as_windows_1252():
    real = "Le cœur a ses raisons que la raison ne connaît point — Pascal. 中文：“你好”。 naïve façade"
    broken = real.encode("utf-8").decode("windows-1252", errors="replace")
    assert mojibake.is_bad(broken) and ftfy_is_bad(broken)
    assert mojibake.is_bad(real) == ftfy_is_bad(real)


@settings(max_examples=2000, deadline=None)
@given(text=texts)
def test_fix_latin_ligatures_equals_ftfy(text: str):
    assert mojibake.fix_latin_ligatures(text) == ftfy_fix_latin_ligatures(text)


def test_a_pattern_without_a_required_non_ascii_class_gets_no_shortcut():
    import re
    assert mojibake.required_chars(re.compile("a|é")) is None
    assert mojibake.required_chars(re.compile("é+")) is None  # unbounded: no window
    assert mojibake.required_chars(re.compile("é|ü", re.IGNORECASE)) is None
    assert mojibake.required_chars(re.compile("xé|ü[ab]")) == ("[éü]", 2)
