"""Token shards: one Arrow shard per data file, exactly `convert_data_to_id`'s output, redone only when stale."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from corpus.dataset import DatasetCorrupt, build_dataset, mask_dataset, read_meta, write_meta
from corpus.dataset.blockfile import iter_file_payloads, iter_file_records
from corpus.dataset.serializer import get_serializer
from tokenization import token_shards
from tokenization.convert import convert_data_to_id, count_answer_dicts
from tokenization.shard_format import ext_states, iter_shard_rows, shard_key
from tokenization.token_shards import (
    SHARDS_MANIFEST,
    conversion_key,
    data_file_fingerprint,
    fresh_shards,
    read_shards_manifest,
    record_to_sample,
    stale_shards,
    tokenize_dataset,
    tokenize_file,
)
from tokenization.tokenizer import CPMBeeTokenizer
from tokenization.vocab_build import VocabBuildConfig, build_vocab_file

BLOCK = 4096  # small blocks keep test files small
TEXTS = ["the cat sat on the mat", "机器学习让计算机从数据中学习", "a dog and a cat", "深度学习是机器学习的分支"]


@pytest.fixture(scope="module")
def vocabs(tmp_path_factory) -> tuple[Path, Path]:
    """Two different vocabularies learned from the same small corpus."""
    folder = tmp_path_factory.mktemp("vocab")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(TEXTS * 3) + "\n", encoding="utf-8")
    build_vocab_file([corpus], folder / "a.txt", VocabBuildConfig(size=120))
    build_vocab_file([corpus], folder / "b.txt", VocabBuildConfig(size=60))
    return folder / "a.txt", folder / "b.txt"


def _write_file(dataset: Path, name: str, records: list, escaped: bool | None = True) -> None:
    extra = {} if escaped is None else {"escaped": escaped}
    with build_dataset(dataset, name, block_size=BLOCK, extra_meta=extra) as writer:
        for record in records:
            writer.write(record)


STRUCTURED = {"question": "which?", "options": {"<option_0>": "cat", "<option_1>": "dog ☃"}, "<ans>": "<option_1>"}


@pytest.fixture
def dataset(tmp_path) -> Path:
    path = tmp_path / "ds"
    _write_file(path, "part-0", [{"text": t} for t in TEXTS] + [STRUCTURED])
    _write_file(path, "part-1", [{"text": t + " ☃"} for t in TEXTS] * 5)
    _write_file(path, "part-2", [{"text": "dog"}])
    return path


def _mtimes(shards: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in shards.glob("*.arrow")}


def test_plain_text_becomes_cpm_bee_pretraining_sample():
    assert record_to_sample({"text": "a<<b"}, escaped=True) == {"input": "", "<ans>": "a<<b"}
    assert record_to_sample({"text": "a<b"}, escaped=False) == {"input": "", "<ans>": "a<<b"}
    assert record_to_sample(STRUCTURED, escaped=True) is STRUCTURED


def test_each_data_file_gets_one_shard_holding_convert_data_to_id_output(dataset, vocabs):
    report = tokenize_dataset(dataset, vocabs[0])
    assert report.redone == ["part-0", "part-1", "part-2"] and report.fresh == []
    tokenizer = CPMBeeTokenizer(vocabs[0])
    shards = dataset / "token-shards"
    for info in read_meta(dataset):
        rows = list(iter_shard_rows(shards / f"{info.file_name}.arrow"))
        records = _records(dataset, info.file_name)
        assert [row["record"] for row in rows] == list(range(len(records)))
        for row, record in zip(rows, records):
            ids, id_subs, context, segments, segment_rel, num_segments, states = convert_data_to_id(
                tokenizer, record_to_sample(record, escaped=True), shuffle_answer=False, max_depth=16
            )
            np.testing.assert_array_equal(row["ids"], ids)
            np.testing.assert_array_equal(row["id_subs"], id_subs)
            np.testing.assert_array_equal(row["context"], context)
            np.testing.assert_array_equal(row["segments"], segments)
            np.testing.assert_array_equal(row["segment_rel"], segment_rel)
            assert row["num_segments"] == num_segments and row["length"] == len(ids)
            assert ext_states(row) == states


def _records(dataset: Path, file_name: str) -> list:
    info = next(i for i in read_meta(dataset) if i.file_name == file_name)
    deserialize = get_serializer("auto").deserialize
    return [deserialize(payload) for _, payload in iter_file_payloads(dataset, info)]


def test_structured_sample_keeps_its_ext_table_and_family_sub_ids(dataset, vocabs):
    tokenize_dataset(dataset, vocabs[0])
    tokenizer = CPMBeeTokenizer(vocabs[0])
    row = list(iter_shard_rows(dataset / "token-shards" / "part-0.arrow"))[-1]
    states = ext_states(row)
    assert "<option_0>" in states["ext_table"].values() and "☃" in " ".join(states["ext_table"].values())
    assert set(states["token_id_table"]) == {"<option>", "<unk>"}
    option = row["ids"] == tokenizer.encoder["<option>"]
    # <option_0> and <option_1> each appear as a key; <option_1> once more as the answer.
    assert row["id_subs"][option].tolist() == [0, 1, 1]


def test_shard_describes_its_own_key(dataset, vocabs):
    tokenize_dataset(dataset, vocabs[0])
    key = shard_key(dataset / "token-shards" / "part-1.arrow")
    meta = {i.file_name: i for i in read_meta(dataset)}
    assert key["file_name"] == "part-1"
    assert (dataset / "token-shards" / "part-1.arrow").stat().st_mode & 0o777 == 0o644  # readable by training jobs
    assert key["file_fingerprint"] == meta["part-1"].extra_keys["checksum"]
    assert key["vocab_fingerprint"] == CPMBeeTokenizer(vocabs[0]).vocab_fingerprint


def test_fresh_shards_are_not_redone(dataset, vocabs):
    first = tokenize_dataset(dataset, vocabs[0])
    before = _mtimes(dataset / "token-shards")
    second = tokenize_dataset(dataset, vocabs[0])
    assert second.redone == [] and second.fresh == ["part-0", "part-1", "part-2"]
    assert _mtimes(dataset / "token-shards") == before
    assert second.stats == first.stats
    assert stale_shards(dataset, vocabs[0]) == []


def test_fresh_shards_are_listed_by_data_file(dataset, vocabs, tmp_path):
    fingerprints = [CPMBeeTokenizer(vocab).vocab_fingerprint for vocab in vocabs]
    assert fresh_shards(dataset, fingerprints[0]) == {}
    tokenize_dataset(dataset, vocabs[0])
    shards = dataset / "token-shards"
    assert fresh_shards(dataset, fingerprints[0]) == {name: shards / f"{name}.arrow" for name in ("part-0", "part-1", "part-2")}
    assert fresh_shards(dataset, fingerprints[1]) == {}
    assert fresh_shards(dataset, fingerprints[0], max_depth=8) == {}
    _replace_part_1(dataset, [{"text": "changed"}], tmp_path / "other")  # its shard is stale, the others stay fresh
    assert sorted(fresh_shards(dataset, fingerprints[0])) == ["part-0", "part-2"]


def test_rows_say_where_their_record_is_and_what_shuffling_would_change(dataset, vocabs):
    tokenize_dataset(dataset, vocabs[0])
    for info in read_meta(dataset):
        rows = list(iter_shard_rows(dataset / "token-shards" / f"{info.file_name}.arrow"))
        positions = [(block - info.block_begin, offset) for block, offset, _ in iter_file_records(dataset, info)]
        assert [(row["block"], row["offset"]) for row in rows] == positions
        records = _records(dataset, info.file_name)
        assert [row["answer_dicts"] for row in rows] == [count_answer_dicts(record_to_sample(r, True)) for r in records]
    assert count_answer_dicts({"<ans>": {"a": "x", "b": {"c": "y"}}}) == 2
    assert count_answer_dicts({"<ans>": "x", "q": {"a": "b"}}) == 0
    structured = list(iter_shard_rows(dataset / "token-shards" / "part-0.arrow"))[-1]
    # every ext token's position (options and spans missing from the small vocab), and its ext id there
    assert structured["ext_positions"].tolist() == np.flatnonzero(np.isin(structured["ids"], _family_ids(vocabs[0]))).tolist()
    assert set(structured["ext_at"].tolist()) == set(structured["ext_ids"].tolist())


def _family_ids(vocab: Path) -> list[int]:
    tokenizer = CPMBeeTokenizer(vocab)
    return [tokenizer.encoder["<option>"], tokenizer.encoder["<unk>"]]


def test_a_changed_vocab_makes_every_shard_stale(dataset, vocabs):
    tokenize_dataset(dataset, vocabs[0])
    assert stale_shards(dataset, vocabs[1]) == ["part-0", "part-1", "part-2"]
    report = tokenize_dataset(dataset, vocabs[1])
    assert report.redone == ["part-0", "part-1", "part-2"]
    manifest = read_shards_manifest(dataset / "token-shards", str(dataset))
    assert manifest.vocab_fingerprint == CPMBeeTokenizer(vocabs[1]).vocab_fingerprint
    assert {entry.vocab_fingerprint for entry in manifest.shards} == {manifest.vocab_fingerprint}


def _replace_part_1(dataset: Path, records: list, scratch: Path) -> None:
    """Rebuild part-1 with other records elsewhere and put it in place of the old one."""
    _write_file(scratch, "part-1", records)
    new_info = read_meta(scratch)[0]
    shutil.copyfile(scratch / "part-1", dataset / "part-1")
    infos = read_meta(dataset)
    infos[1] = new_info.model_copy(update={"block_begin": infos[1].block_begin, "block_end": infos[1].block_end})
    write_meta(dataset, infos)


def test_changed_data_makes_exactly_its_shard_stale(dataset, vocabs, tmp_path):
    tokenize_dataset(dataset, vocabs[0])
    _replace_part_1(dataset, [{"text": "a new cat"}] * 3, tmp_path / "other")
    assert stale_shards(dataset, vocabs[0]) == ["part-1"]
    report = tokenize_dataset(dataset, vocabs[0])
    assert report.redone == ["part-1"] and report.fresh == ["part-0", "part-2"]
    assert [row["record"] for row in iter_shard_rows(dataset / "token-shards" / "part-1.arrow")] == [0, 1, 2]


def test_an_added_file_gets_the_only_new_shard(dataset, vocabs):
    tokenize_dataset(dataset, vocabs[0])
    _write_file(dataset, "part-3", [{"text": "cat"}])
    assert tokenize_dataset(dataset, vocabs[0]).redone == ["part-3"]


def test_files_without_checksum_are_keyed_by_size_and_mtime(tmp_path, vocabs):
    dataset = tmp_path / "cpm-bee-style"
    _write_file(dataset, "a", [{"text": "cat"}], escaped=None)
    _write_file(dataset, "b", [{"text": "dog"}], escaped=None)
    infos = [info.model_copy(update={"checksum": None}) for info in read_meta(dataset)]
    write_meta(dataset, infos)
    tokenize_dataset(dataset, vocabs[0])
    os.utime(dataset / "b", ns=(1, 1))
    assert stale_shards(dataset, vocabs[0]) == ["b"]


def test_masked_or_removed_files_lose_their_shards(dataset, vocabs):
    tokenize_dataset(dataset, vocabs[0])
    mask_dataset(dataset, "part-2")
    report = tokenize_dataset(dataset, vocabs[0])
    assert report.removed == ["part-2"] and report.redone == []
    assert not (dataset / "token-shards" / "part-2.arrow").exists()
    mask_dataset(dataset, "part-2", mask=False)
    assert tokenize_dataset(dataset, vocabs[0]).redone == ["part-2"]


def test_a_damaged_shard_is_redone(dataset, vocabs):
    tokenize_dataset(dataset, vocabs[0])
    shard = dataset / "token-shards" / "part-0.arrow"
    shard.write_bytes(shard.read_bytes()[:100])
    assert stale_shards(dataset, vocabs[0]) == ["part-0"]
    tokenize_dataset(dataset, vocabs[0])
    assert len(list(iter_shard_rows(shard))) == 5


def test_an_interrupted_run_keeps_the_shards_it_finished(dataset, vocabs):
    # part-1 is damaged on disk: the run stops there, but part-0's shard is recorded as done.
    data = bytearray((dataset / "part-1").read_bytes())
    data[0] = 0x7E
    (dataset / "part-1").write_bytes(bytes(data))
    with pytest.raises(DatasetCorrupt, match="part-1"):
        tokenize_dataset(dataset, vocabs[0])
    manifest = read_shards_manifest(dataset / "token-shards", str(dataset))
    assert [entry.file_name for entry in manifest.shards] == ["part-0"] and manifest.stats is None
    assert not list((dataset / "token-shards").glob("*.tmp"))
    mask_dataset(dataset, "part-1")
    report = tokenize_dataset(dataset, vocabs[0])
    assert report.fresh == ["part-0"] and report.redone == ["part-2"]


def test_records_that_do_not_convert_are_counted_and_kept(tmp_path, vocabs):
    dataset = tmp_path / "ds"
    _write_file(dataset, "part-0", [{"text": "cat"}, {"q": 5}, {"text": "a < b"}, {"text": "dog"}], escaped=True)
    report = tokenize_dataset(dataset, vocabs[0])
    assert report.stats.nrecords == 2 and report.stats.nrejected == 2
    rows = list(iter_shard_rows(dataset / "token-shards" / "part-0.arrow"))
    assert [row["record"] for row in rows] == [0, 3]
    rejects = [json.loads(line) for line in (dataset / "token-shards" / "part-0.rejects.jsonl").read_text().splitlines()]
    assert [r["record"] for r in rejects] == [1, 2]
    assert "$.q" in rejects[0]["error"] and "pos 2" in rejects[1]["error"]


def test_unescaped_plain_text_is_escaped_before_tokenizing(tmp_path, vocabs):
    dataset = tmp_path / "ds"
    _write_file(dataset, "part-0", [{"text": "a < b"}], escaped=False)
    report = tokenize_dataset(dataset, vocabs[0])
    assert report.stats.nrejected == 0 and report.stats.nrecords == 1


def test_token_statistics_sum_the_records(dataset, vocabs):
    report = tokenize_dataset(dataset, vocabs[0])
    tokenizer = CPMBeeTokenizer(vocabs[0])
    lengths, unk, with_ext = [], 0, 0
    for shard in sorted((dataset / "token-shards").glob("*.arrow")):
        for row in iter_shard_rows(shard):
            lengths.append(len(row["ids"]))
            unk += int(np.count_nonzero(row["ids"] == tokenizer.unk_id))
            with_ext += bool(len(row["ext_ids"]))
    stats = report.stats
    assert stats.nrecords == len(lengths) == 26 and stats.ntokens == sum(lengths)
    assert stats.unk_tokens == unk > 0 and stats.unk_rate == round(unk / sum(lengths), 6)
    assert stats.records_with_ext == with_ext and stats.ext_special_entries == 2
    assert stats.length.min == min(lengths) and stats.length.max == max(lengths)
    assert stats.length.p50 == float(np.percentile(lengths, 50))
    assert stats.source_bytes == sum(info.nbytes for info in read_meta(dataset))
    saved = json.loads((dataset / "token-shards" / SHARDS_MANIFEST).read_text())
    assert saved["stats"]["ntokens"] == stats.ntokens


def test_workers_write_the_same_shards(dataset, vocabs, tmp_path):
    tokenize_dataset(dataset, vocabs[0], tmp_path / "one")
    tokenize_dataset(dataset, vocabs[0], tmp_path / "two", workers=2)
    for shard in (tmp_path / "one").glob("*.arrow"):
        assert shard.read_bytes() == (tmp_path / "two" / shard.name).read_bytes()
    one = read_shards_manifest(tmp_path / "one", "")
    two = read_shards_manifest(tmp_path / "two", "")
    assert one.shards == two.shards and one.stats == two.stats


def test_progress_counts_every_record_once(dataset, vocabs, monkeypatch):
    monkeypatch.setattr(token_shards, "_PROGRESS_EVERY", 3)
    done: list[int] = []
    tokenizer = CPMBeeTokenizer(vocabs[0])
    info = read_meta(dataset)[1]
    key = (data_file_fingerprint(dataset, info), tokenizer.vocab_fingerprint, conversion_key(info, 16))
    tokenize_file(dataset, info, tokenizer, dataset / "out", key, 16, advance=done.append)
    assert done == [3] * 6 + [2] and sum(done) == info.nlines == 20
