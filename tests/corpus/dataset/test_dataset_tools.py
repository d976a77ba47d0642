"""shuffle, merge, compact, mask and convert: CPM-Bee's semantics, seeded and atomic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataset_fixtures import write_dataset
from corpus.dataset import (
    compact_dataset,
    convert_dataset,
    iter_records,
    mask_dataset,
    merge_dataset,
    read_meta,
    shuffle_dataset,
    verify_dataset,
)


def ids(path: Path) -> list[int]:
    return [record["i"] for record in iter_records(path)]


@pytest.mark.parametrize("bucket_size", [1 << 30, 64])  # one bucket; many buckets
def test_shuffle_keeps_every_record_and_is_seeded(small_dataset: Path, tmp_path: Path, bucket_size: int):
    name = shuffle_dataset(small_dataset, tmp_path / "a", block_size=128, bucket_size=bucket_size, seed=7)
    shuffle_dataset(small_dataset, tmp_path / "b", block_size=128, bucket_size=bucket_size, seed=7)
    shuffle_dataset(small_dataset, tmp_path / "c", block_size=128, bucket_size=bucket_size, seed=8)
    assert name.endswith(".shuffle")
    assert sorted(ids(tmp_path / "a")) == list(range(30))
    assert ids(tmp_path / "a") != list(range(30))
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert ids(tmp_path / "a") != ids(tmp_path / "c")
    verify_dataset(tmp_path / "a")
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".shuffle")]  # buckets cleaned up


def test_shuffle_skips_masked_files_and_carries_common_extras(small_dataset: Path, tmp_path: Path):
    mask_dataset(small_dataset, "part-0")
    shuffle_dataset(small_dataset, tmp_path / "out", output_name="s")
    assert sorted(ids(tmp_path / "out")) == list(range(20, 30))
    (info,) = read_meta(tmp_path / "out")
    assert info.extra_keys["serializer"] == "pickle"


def test_mask_and_unmask(small_dataset: Path):
    mask_dataset(small_dataset, "part-1")
    assert ids(small_dataset) == list(range(20))
    mask_dataset(small_dataset, "part-1", mask=False)
    assert ids(small_dataset) == list(range(30))
    with pytest.raises(KeyError, match="no data file named 'nope'"):
        mask_dataset(small_dataset, "nope")


def test_compact_drops_deleted_files_and_renumbers(tmp_path: Path):
    path = write_dataset(tmp_path / "ds", {"a": [{"i": 1}] * 4, "b": [{"i": 2}] * 4, "c": [{"i": 3}] * 4})
    checksum_c = read_meta(path)[2].extra_keys["checksum"]
    (path / "b").unlink()
    assert compact_dataset(path) == ["b"]
    a, c = read_meta(path)
    assert (a.block_begin, a.block_end, c.block_begin, c.block_end) == (0, 2, 2, 4)
    assert c.extra_keys["checksum"] == checksum_c
    assert ids(path) == [1] * 4 + [3] * 4
    verify_dataset(path)


def test_merge_copies_files_renaming_clashes(small_dataset: Path, tmp_path: Path):
    other = write_dataset(tmp_path / "other", {"part-0": [{"i": 100}], "new": [{"i": 101}]})
    assert merge_dataset(small_dataset, other) == ["part-0_0", "new"]
    assert [info.file_name for info in read_meta(small_dataset)] == ["part-0", "part-1", "part-0_0", "new"]
    assert ids(small_dataset) == list(range(30)) + [100, 101]
    verify_dataset(small_dataset)
    assert ids(other) == [100, 101]  # source untouched


@pytest.mark.parametrize("target", ["json", "pickle"])
def test_convert_keeps_names_order_masks_and_records(small_dataset: Path, tmp_path: Path, target: str):
    mask_dataset(small_dataset, "part-1")
    convert_dataset(small_dataset, tmp_path / "out", target)
    infos = read_meta(tmp_path / "out")
    assert [(i.file_name, i.mask, i.extra_keys["serializer"]) for i in infos] == [
        ("part-0", False, target),
        ("part-1", True, target),
    ]
    mask_dataset(tmp_path / "out", "part-1", mask=False)
    assert ids(tmp_path / "out") == list(range(30))
    verify_dataset(tmp_path / "out")


def test_convert_to_json_names_the_record_json_cannot_hold(tmp_path: Path):
    path = write_dataset(tmp_path / "ds", {"a": [{"ok": 1}, {"raw": b"\x00"}]}, block_size=256)
    with pytest.raises(ValueError, match=r"ds/a: record 1: cannot write as json"):
        convert_dataset(path, tmp_path / "out", "json")
    assert not (tmp_path / "out" / "a").exists()


def test_json_dataset_round_trips_through_pickle_and_back(tmp_path: Path):
    records = [{"text": "第一", "n": i} for i in range(10)]
    path = write_dataset(tmp_path / "ds", {"a": records}, block_size=128, serializer="json")
    convert_dataset(path, tmp_path / "p", "pickle")
    convert_dataset(tmp_path / "p", tmp_path / "j", "json")
    assert (tmp_path / "j" / "a").read_bytes() == (path / "a").read_bytes()
    assert json.loads((tmp_path / "j" / "meta.bin").read_text())["checksum"] == read_meta(path)[0].extra_keys["checksum"]
