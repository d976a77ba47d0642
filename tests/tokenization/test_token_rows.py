"""Token shard rows read back by record position equal online conversion, alone and continuing
another sample's ext states (the in-context case)."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from corpus.dataset import DistributedDataset, build_dataset, read_meta, write_meta
from tokenization import CPMBeeTokenizer, DatasetTokenRows, convert_data_to_id, record_to_sample, tokenize_dataset

GOLDEN_VOCAB = Path(__file__).parent / "golden" / "vocab.txt"
CCPM = Path(__file__).parents[3] / "shared" / "cpm-bee" / "ccpm_eval.jsonl"


@pytest.fixture(scope="module")
def tokenizer() -> CPMBeeTokenizer:
    return CPMBeeTokenizer(GOLDEN_VOCAB)


def _records() -> list:
    """Structured samples with options and unknown spans, plain text, answers with fields, and one reject."""
    if CCPM.exists():
        ccpm = [json.loads(line) for line in CCPM.read_text(encoding="utf-8").splitlines()[:40]]
    else:  # the shared folder is not in every checkout: a sample of the same shape
        ccpm = [{"input": f"灯熄灭了{i}", "options": {f"<option_{k}>": f"残灯{k}" for k in range(4)},
                 "question": "哪句诗？", "<ans>": f"<option_{i % 4}>"} for i in range(40)]  # fmt: skip
    plain = [{"text": text} for text in ["the cat ☃ sat", "数据 🐝 中学习 <tag>", "a << b", "ÿÿ ☃☃ q"]]
    answers = [{"q": "two fields", "<ans>": {"a": "cat ☃", "b": "<mask_0> dog"}}, {"<ans>": {"x": {"y": "z ☃"}}}]
    rejected = [{"input": "x", "<ans>": 3}]
    return list(itertools.chain.from_iterable(zip(ccpm, itertools.cycle(plain + answers + rejected))))


@pytest.fixture
def dataset(tmp_path, tokenizer) -> Path:
    path = tmp_path / "ds"
    for name, part in (("part-0", _records()[:50]), ("part-1", _records()[50:])):
        with build_dataset(path, name, block_size=1024, extra_meta={"escaped": False}) as writer:
            for record in part:
                writer.write(record)
    tokenize_dataset(path, GOLDEN_VOCAB)
    return path


def _read_all(dataset: Path) -> list[tuple[object, tuple]]:
    """(record, position) of every record, in a shuffled block order."""
    reader = DistributedDataset(str(dataset), shuffle=True, seed=3, max_repeat_times=1)
    out = []
    while True:
        try:
            record = reader.read()
        except EOFError:
            return out
        out.append((record, reader.position()))


def _assert_same(expected: tuple, actual: tuple) -> None:
    for n in range(5):
        assert actual[n].dtype == expected[n].dtype and np.array_equal(actual[n], expected[n]), n
    assert actual[5] == expected[5] and actual[6] == expected[6]


def test_rows_equal_online_conversion_alone_and_continuing_ext_states(dataset, tokenizer):
    rows = DatasetTokenRows.open(dataset, tokenizer.vocab_fingerprint, escaped=False)
    assert rows is not None and sorted(rows.shards) == ["part-0", "part-1"]
    read = _read_all(dataset)
    assert len(read) == len(_records())
    usable = []
    for record, position in read:
        row = rows.row(*position)
        sample = record_to_sample(record, escaped=False)
        if row is None:  # only the record that cannot convert has no row
            assert sample == {"input": "x", "<ans>": 3}
            continue
        _assert_same(convert_data_to_id(tokenizer, sample, shuffle_answer=False), row.converted(None, tokenizer.vocab_size))
        usable.append((sample, row))
    # chains of 1-4 samples, as an instance's in-context samples continue each other's ext states
    for size in (2, 3, 4):
        for start in range(0, len(usable) - size, size):
            online = rows_state = None
            for sample, row in usable[start : start + size]:
                expected = convert_data_to_id(tokenizer, sample, online, shuffle_answer=False)
                actual = row.converted(rows_state, tokenizer.vocab_size)
                _assert_same(expected, actual)
                online, rows_state = expected[6], actual[6]


def test_continuing_does_not_modify_the_states_given(dataset, tokenizer):
    rows = DatasetTokenRows.open(dataset, tokenizer.vocab_fingerprint, escaped=False)
    first, second = (rows.row(*position) for _, position in _read_all(dataset)[:2])
    states = first.converted(None, tokenizer.vocab_size)[6]
    copy = json.loads(json.dumps(states))
    second.converted(states, tokenizer.vocab_size)
    assert json.loads(json.dumps(states)) == copy


def test_only_shards_made_for_this_vocabulary_depth_and_escaping_are_used(dataset, tokenizer, tmp_path):
    assert DatasetTokenRows.open(dataset, "another-vocab", escaped=False) is None
    assert DatasetTokenRows.open(dataset, tokenizer.vocab_fingerprint, escaped=False, max_depth=8) is None
    assert DatasetTokenRows.open(dataset, tokenizer.vocab_fingerprint, escaped=True) is None
    moved = tmp_path / "elsewhere"
    shutil.move(dataset / "token-shards", moved)
    assert DatasetTokenRows.open(dataset, tokenizer.vocab_fingerprint, escaped=False) is None
    assert DatasetTokenRows.open(dataset, tokenizer.vocab_fingerprint, escaped=False, shards_dir=moved) is not None


def test_a_data_file_that_changes_while_training_loses_its_shard(dataset, tokenizer, caplog):
    rows = DatasetTokenRows.open(dataset, tokenizer.vocab_fingerprint, escaped=False)
    (record, position), *_ = _read_all(dataset)
    assert rows.row(*position) is not None
    info = position[0]
    changed = info.model_copy(update={"checksum": "0" * 64})  # as a rewritten file's meta.bin line
    write_meta(dataset, [changed if i.file_name == info.file_name else i for i in read_meta(dataset)])
    with caplog.at_level(logging.WARNING):
        assert rows.row(changed, *position[1:]) is None
    assert f"{info.file_name} changed since its token shard was made" in caplog.text
    assert rows.row(info, *position[1:]) is None  # and stays unused
