"""load_vocab: CPM-Bee's vocabulary format, read the way the reference reads it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tokenization import VocabError, load_vocab

BASE = ["<pad>", "<unk>", "<mask>", "<sep>", "</n>", "</_>", "<s>", "</s>"]


def _write(tmp_path: Path, lines: list[str], newline: str = "\n", trailing: bool = True) -> Path:
    path = tmp_path / "vocab.txt"
    path.write_bytes((newline.join(lines) + (newline if trailing else "")).encode("utf-8"))
    return path


def test_id_is_line_number_and_newline_space_are_mapped(tmp_path: Path) -> None:
    vocab = load_vocab(_write(tmp_path, BASE + ["a", " the"]))
    assert vocab.tokens[4] == "\n" and vocab.tokens[5] == " "
    assert vocab.tokens.index(" the") == 9


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_windows_and_old_mac_line_ends_read_as_the_reference_reads_them(tmp_path: Path, newline: str) -> None:
    vocab = load_vocab(_write(tmp_path, BASE + ["a"], newline=newline))
    assert vocab.tokens[-1] == "a" and len(vocab.tokens) == 9


def test_missing_final_newline_is_fine(tmp_path: Path) -> None:
    assert load_vocab(_write(tmp_path, BASE + ["a"], trailing=False)).tokens[-1] == "a"


def test_fingerprint_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    assert load_vocab(path).fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (BASE[:3] + [""] + BASE[3:], r"vocab.txt:4: blank line"),
        (BASE + ["a", "b", "a"], r"vocab.txt:11: duplicate token 'a' \(first on line 9\)"),
        (BASE + [" "], r"vocab.txt:9: a literal space"),
        ([t for t in BASE if t != "</s>"], r"missing required token\(s\) </s>"),
    ],
)
def test_files_the_reference_would_misnumber_are_refused_with_the_line(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    with pytest.raises(VocabError, match=message):
        load_vocab(_write(tmp_path, lines))


def test_non_utf8_is_refused_with_the_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"<pad>\n\xff\n")
    with pytest.raises(VocabError, match="not UTF-8 at byte 6"):
        load_vocab(path)
