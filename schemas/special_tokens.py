"""CPM-Bee's special-token syntax: the one definition that the corpus build (escape, split), the
vocabulary's corpus reader and the tokenizer share.

In text written in CPM-Bee's syntax (what its tokenizer reads; what an escaped dataset stores):
- `<<` is a literal `<`;
- `<` and any character but `<` open a special token, which runs to the next `>` and holds no
  `<`: `<ans>`, `<option_0>`, `</s>`;
- any other `<` (the last character of the text, or one whose token is never closed) is an error.
Plain text is written in the syntax by `escape_text` (every `<` becomes `<<`).

Two narrower shapes are named here because stages rely on them: `TOKEN_NAME`, the special
tokens a sample names (what the build keeps unescaped in raw samples), and `BOUNDED_TOKEN`,
what the splitter never cuts through in raw text. Every match of either is a special token of
`SYNTAX` (tests/schemas/test_special_tokens.py).
"""

from __future__ import annotations

import re

# At each `<`: `<<` (group 1: a literal `<`), a special token, or a bare `<` (a match of length 1:
# a syntax error). A special token is `<` + any character but `<` (even `>`) + anything but `<>` + `>`.
SYNTAX = re.compile(r"<(?:(<)|[^<][^<>]*>)?")

# The special tokens samples name: `<` + a name of letters, digits, `_` and `/` (not starting with
# a digit) + `>`, as `<ans>`, `<option_0>`, `<mask_3>`, `</s>`.
TOKEN_NAME = re.compile(r"<[A-Za-z_/][A-Za-z0-9_/]*>")

# A special token on one line with at most 64 characters inside: the splitter keeps it whole;
# the bound keeps a stray `<` in plain text from holding a paragraph together.
BOUNDED_TOKEN = re.compile(r"<[^<>\n]{1,64}>")


def escape_text(text: str) -> str:
    """Plain text in CPM-Bee's syntax: every `<` becomes `<<`."""
    return text.replace("<", "<<")


def unescape_text(text: str) -> str:
    """Undo `escape_text`: every `<<` becomes `<`."""
    return text.replace("<<", "<")


def is_special(token: str) -> bool:
    """True for a token written `<name>`: CPM-Bee never matches these inside plain text."""
    return token.startswith("<") and token.endswith(">")


def _plain_of(match: re.Match) -> str:
    return "<" if len(match.group()) < 3 else ""  # `<<` and a bare `<` stand for `<`; a token for nothing


def plain_text(text: str) -> str:
    """The characters a string in CPM-Bee's syntax stands for: `<<` -> `<`, special tokens
    removed; a `<` the tokenizer would refuse (nothing after it, or a token never closed) is
    kept as the character it is."""
    if "<" not in text:
        return text
    return SYNTAX.sub(_plain_of, text)
