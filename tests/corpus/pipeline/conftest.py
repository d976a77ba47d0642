"""Fixtures for the corpus pipeline tests: a tiny raw corpus with every kind of trouble, built
once per session (Beam start-up is the slow part, so end-to-end builds are shared)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest
import zstandard

EN = ("Apache Beam pipelines read text in parallel and write results to many shards. "
      "Each stage of this pipeline counts what goes in, what comes out and what it dropped. ")
ZH = "语料处理流水线把原始文本变成训练数据。每一个阶段都记录输入、输出和被丢弃的样本，以及丢弃的原因。"


def en_doc(seed: int, words: int = 60) -> str:
    """A distinct English paragraph: shared prose plus seed-specific words."""
    vocabulary = ("river", "mountain", "library", "engine", "garden", "signal", "harbor", "lantern",
                  "meadow", "planet", "bridge", "canvas", "forest", "window", "anchor", "valley")
    rng = random.Random(seed)
    extra = " ".join(f"{rng.choice(vocabulary)}{rng.randrange(1000)}" for _ in range(words))
    return f"Document {seed} begins here. {EN}{extra}. The end of document number {seed}."


def zh_doc(seed: int) -> str:
    """A distinct Chinese paragraph: shared prose plus seeded random phrases."""
    rng = random.Random(seed)
    chars = "天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏闰余成岁律吕调阳云腾致雨露结为霜金生丽水玉出昆冈"
    extra = "，".join("".join(rng.choice(chars) for _ in range(6)) for _ in range(12))
    return f"第{seed}篇文章。{ZH}{extra}。"


def unique_doc(seed: int, words: int = 80) -> str:
    """An English paragraph with no prose shared with any other (a long document of these is
    not repetitive as a whole)."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    body = " ".join("".join(rng.choice(letters) for _ in range(rng.randrange(3, 9))) for _ in range(words))
    return f"Part {seed}: {body}."


def near_copy(text: str) -> str:
    """The same text with one word changed: Jaccard of 5-gram shingles stays well above 0.8."""
    words = text.split(" ")
    words[len(words) // 2] = "CHANGED"
    return " ".join(words)


def write_corpus(root: Path) -> dict:
    """Write the test corpus under `root`; returns what was planted, for the tests to check."""
    (root / "txt").mkdir(parents=True)
    (root / "json").mkdir(parents=True)
    long_doc = "<n>".join(unique_doc(100 + i) for i in range(8))  # ~4 500 chars: split into pieces
    en_lines = [en_doc(i) for i in range(6)]
    en_lines.append(en_doc(0))                    # line 7: exact duplicate of line 1
    en_lines.append(near_copy(en_doc(1)))         # line 8: near duplicate of line 2
    en_lines.append("")                           # line 9: empty line
    en_lines.append("short line")                 # line 10: too short
    en_lines.append(long_doc)                     # line 11: split
    en_lines.append("#### $$$ %%% " * 12)         # line 12: junk
    en_lines.append("a <b> tag and x < y in text " + en_doc(50))  # line 13: `<` escaped
    (root / "txt" / "en.txt").write_text("\n".join(en_lines) + "\n", encoding="utf-8")
    zh_lines = [zh_doc(i) for i in range(4)] + [zh_doc(0)]  # line 5: exact duplicate
    (root / "txt" / "zh.txt.gz").write_bytes(gzip.compress(("\n".join(zh_lines) + "\n").encode()))
    (root / "txt" / "bad-bytes.txt").write_bytes(en_doc(60).encode() + b"\n" + b"caf\xe9 " + en_doc(61).encode() + b"\n")
    # a zstd file with its end cut off: the lines before the cut are read, the cut is a reject
    zst_body = "\n".join(en_doc(200 + i, words=100) for i in range(300)).encode()  # > one 128 KiB zstd block
    (root / "txt" / "cut.txt.zst").write_bytes(zstandard.ZstdCompressor().compress(zst_body)[:-40])
    (root / "txt" / "empty.txt.gz").write_bytes(b"")
    json_lines = [
        json.dumps({"input": "1 << 2 <mask_0>", "question": "比较", "<ans>": {"<mask_0>": "是"}}, ensure_ascii=False),
        json.dumps({"input": "翻译", "options": {"<option_0>": "a", "<option_1>": "b"}, "<ans>": "<option_1>"}, ensure_ascii=False),
        "{broken json",
        "[1, 2, 3]",
        json.dumps({"input": "no answer key"}),
        json.dumps({"input": "1 << 2 <mask_0>", "question": "比较", "<ans>": {"<mask_0>": "是"}}, ensure_ascii=False),
        json.dumps({"input": ["a list"], "<ans>": "x"}),
        json.dumps({"input": "1 < 2, written unescaped", "<ans>": "yes"}),        # line 8: lone `<`
        json.dumps({"text": "A JSON document. " + en_doc(70), "id": 7, "source": "web"}),  # line 9: a document
        json.dumps({"content": en_doc(3), "id": "dup"}),  # line 10: same text as txt/en.txt:4, other fields
    ]
    (root / "json" / "qa.jsonl").write_text("\n".join(json_lines) + "\n", encoding="utf-8")
    (root / "json" / "notes.md").write_text("not an input type\n", encoding="utf-8")
    return {"long_doc": long_doc}


@pytest.fixture(scope="session")
def raw_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("raw") / "corpus"
    write_corpus(root)
    return root


@pytest.fixture(scope="session")
def built(raw_corpus, tmp_path_factory):
    """One end-to-end build of `raw_corpus` on the DirectRunner (in-process, one worker)."""
    from corpus.pipeline.build import build_corpus
    from schemas import BuildConfig

    out = tmp_path_factory.mktemp("out")
    config = BuildConfig(input=[str(raw_corpus)], output=str(out / "ds"), dataset_name="tiny", task_name="test",
                         split={"min_length": 50, "max_length": 1500})
    result = build_corpus(config, [], log=lambda line: None)
    return config, result
