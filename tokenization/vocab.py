"""Read a vocabulary in CPM-Bee's format: one token a line, id = line number.

`</n>` and `</_>` on their own line stand for the newline and the space character. The file is
read the way CPM-Bee reads it (UTF-8, universal newlines, a trailing empty line ignored), so ids
agree with the reference; files the reference would silently mis-number (blank lines in the
middle, duplicate tokens) are refused with the line that is wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

NEWLINE_TOKEN = "</n>"
SPACE_TOKEN = "</_>"
# Tokens the tokenizer cannot work without (CPM-Bee looks them up by name).
REQUIRED_TOKENS = ("<unk>", "<mask>", "<s>", "</s>", NEWLINE_TOKEN, SPACE_TOKEN)


class VocabError(ValueError):
    """A vocabulary file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Vocab:
    """A loaded vocabulary.

    tokens: the tokens in id order, with `</n>`/`</_>` already mapped to "\\n"/" ".
    fingerprint: sha256 hex digest of the file's bytes.
    path: where it was read from.
    """

    tokens: tuple[str, ...]
    fingerprint: str
    path: str


def file_fingerprint(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes (the vocab fingerprint carried with token data)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_vocab(path: str | Path) -> Vocab:
    """Read a CPM-Bee vocabulary file.

    Takes: path to the file.
    Returns: a `Vocab` whose token at index i has id i.
    Raises: VocabError for a blank line before the end, a duplicate token, a literal space
    token (the format spells it `</_>`), or a missing required token; OSError if unreadable.
    """
    path = str(path)
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise VocabError(f"{path}: not UTF-8 at byte {e.start}") from None
    # Universal newlines, as io.TextIOWrapper reads it in the reference.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    seen: dict[str, int] = {}
    tokens: list[str] = []
    for lineno, token in enumerate(lines, start=1):
        if token == "":
            raise VocabError(f"{path}:{lineno}: blank line (ids are line numbers; remove it)")
        if token == " ":
            raise VocabError(f"{path}:{lineno}: a literal space token; write it as {SPACE_TOKEN}")
        if token in seen:
            raise VocabError(f"{path}:{lineno}: duplicate token {token!r} (first on line {seen[token]})")
        seen[token] = lineno
        tokens.append(token)
    missing = [t for t in REQUIRED_TOKENS if t not in seen]
    if missing:
        raise VocabError(f"{path}: missing required token(s) {', '.join(missing)}")
    mapped = tuple(
        "\n" if t == NEWLINE_TOKEN else " " if t == SPACE_TOKEN else t for t in tokens
    )
    return Vocab(tokens=mapped, fingerprint=hashlib.sha256(raw).hexdigest(), path=path)
