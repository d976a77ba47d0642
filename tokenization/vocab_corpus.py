"""The text a vocabulary is learned from: every string of a corpus, as the tokenizer will see it.

Sources are CPM-Bee binary datasets (a folder with `meta.bin`) or raw input files and folders
(`.txt`, `.json`/`.jsonl`, optionally `.gz`/`.zst`). Raw input is read and cleaned exactly as the
corpus pipeline reads and cleans it (`corpus.pipeline.read`, `corpus.pipeline.clean`), so the
vocabulary fits the datasets that pipeline will build from the same files.

What counts as text: plain text whole; for a structured sample its string values and its keys,
minus the `<name>` special tokens in them (they become special ids, not characters). Text in
CPM-Bee's syntax (escaped plain text, structured samples) is read through that syntax: `<<` is a
literal `<`, `<name>` is dropped. Raw plain text is literal.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpus.dataset import META_FILE, iter_records, read_meta
from corpus.pipeline.clean import clean_text, clean_value
from corpus.pipeline.read import InputFile, ReadFileLines, input_kind, list_input_files
from schemas import Reject
from schemas.build_config import CleanConfig, ReadConfig
from schemas.special_tokens import is_special, plain_text


@dataclass
class CorpusReadCounts:
    """What reading the sources produced: samples and characters read, samples skipped by reason."""

    samples: int = 0
    chars: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def sample_texts(sample: Any, in_syntax: bool) -> Iterator[str]:
    """The texts of one record: a `{"text": t}` record or a str gives `t`; a structured sample
    gives its non-special keys and its string leaves (lists are walked). `in_syntax` says the
    strings are in CPM-Bee's syntax (escaped). Non-string leaves are ignored.
    """
    if isinstance(sample, str):
        yield plain_text(sample) if in_syntax else sample
        return
    if isinstance(sample, dict) and len(sample) == 1 and isinstance(sample.get("text"), str):
        yield plain_text(sample["text"]) if in_syntax else sample["text"]
        return
    stack = [sample]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield plain_text(node)
        elif isinstance(node, dict):
            for key, value in reversed(list(node.items())):
                stack.append(value)
                if isinstance(key, str) and not is_special(key):
                    stack.append(key)
        elif isinstance(node, (list, tuple)):
            stack.extend(reversed(node))


def _raw_input_files(path: Path, config: ReadConfig) -> list[InputFile]:
    """The raw files of a source path: every readable file under a folder, or the file itself."""
    if path.is_dir():
        files, _ = list_input_files([str(path)], config)
        return files
    kind = input_kind(path.name, config)
    if kind is None:
        raise ValueError(
            f"{path}: not a dataset (no {META_FILE}) and not a raw input file "
            f"(expected {', '.join(config.txt_suffixes + config.json_suffixes)}, optionally .gz/.zst)"
        )
    stat = path.stat()
    fmt, compression = kind
    return [InputFile(path.name, str(path.resolve()), fmt, compression, stat.st_size, stat.st_mtime)]


def _dataset_texts(path: Path, counts: CorpusReadCounts) -> Iterator[str]:
    # Escaped datasets (this pipeline's) hold plain text in CPM-Bee syntax; CPM-Bee's own
    # datasets hold it literal and escape in their transform.
    escaped = all(info.extra_keys.get("escaped") is True for info in read_meta(path) if not info.mask)
    for record in iter_records(path):
        counts.samples += 1
        yield from sample_texts(record, in_syntax=escaped)


def _raw_texts(path: Path, counts: CorpusReadCounts) -> Iterator[str]:
    read_config, clean_config = ReadConfig(), CleanConfig()
    reader = ReadFileLines(read_config)
    reader.setup()
    for input_file in _raw_input_files(path, read_config):
        for item in reader.outputs(input_file):
            if isinstance(item, Reject):
                counts.skipped[item.reason] += 1
                continue
            counts.samples += 1
            if item.kind == "text":
                yield clean_text(item.text, clean_config)
            else:
                yield from sample_texts(clean_value(item.data, clean_config), in_syntax=False)


def iter_corpus_texts(sources: list[str | os.PathLike], counts: CorpusReadCounts) -> Iterator[str]:
    """Every text of every source, in the order given (files of a folder sorted by name).

    Takes: dataset folders, raw files or folders of raw files; `counts`, updated as it reads.
    Yields: the texts (non-empty).
    Raises: FileNotFoundError for a missing source, ValueError for a file of unknown kind,
    DatasetCorrupt for a broken dataset. Unreadable raw lines are counted in `counts.skipped`.
    """
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"corpus source {path} does not exist")
        texts = _dataset_texts(path, counts) if (path / META_FILE).is_file() else _raw_texts(path, counts)
        for text in texts:
            if text:
                counts.chars += len(text)
                yield text
