"""Corrupt datasets give DatasetCorrupt naming the file and block, in the reader and in verify."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from dataset_fixtures import write_dataset
from corpus.dataset import DatasetCorrupt, SimpleDataset, build_dataset, iter_records, verify_dataset

BLOCK = 64


def read_all(path: Path) -> list:
    return list(SimpleDataset(path, shuffle=False))


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(data)


def rewrite_meta(path: Path, change) -> None:
    lines = [json.loads(line) for line in (path / "meta.bin").read_text().splitlines()]
    change(lines)
    (path / "meta.bin").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_truncated_file(small_dataset: Path):
    data_file = small_dataset / "part-0"
    os.truncate(data_file, 3 * BLOCK + 10)
    for action in (read_all, verify_dataset):
        with pytest.raises(DatasetCorrupt, match=r"part-0: .*(block 3 \(block 3 of the file\).*truncated|truncated.*block 3 \(block 3 of the file\))"):
            action(small_dataset)


def test_meta_pointing_past_the_end_of_a_file(small_dataset: Path):
    rewrite_meta(small_dataset, lambda lines: (lines[1].update(block_end=lines[1]["block_end"] + 1)))
    with pytest.raises(DatasetCorrupt, match=r"part-1: truncated: meta.bin gives it 6 blocks"):
        read_all(small_dataset)
    with pytest.raises(DatasetCorrupt, match=r"part-1: truncated: .*; block 15 \(block 5 of the file\) is incomplete"):
        verify_dataset(small_dataset)


def test_bad_magic(small_dataset: Path):
    patch(small_dataset / "part-0", 2 * BLOCK, b"\x7f")
    for action in (read_all, verify_dataset, lambda p: list(iter_records(p))):
        with pytest.raises(DatasetCorrupt, match=r"part-0: block 2 \(block 2 of the file\): bad magic 0x7f at offset 0"):
            action(small_dataset)


def test_record_length_running_past_its_block(small_dataset: Path):
    patch(small_dataset / "part-1", BLOCK + 1, (60).to_bytes(4, "little"))
    for action in (read_all, verify_dataset):
        with pytest.raises(DatasetCorrupt, match=r"part-1: block 11 \(block 1 of the file\): record at offset 0 claims 60"):
            action(small_dataset)


def test_non_contiguous_block_ranges(small_dataset: Path):
    rewrite_meta(small_dataset, lambda lines: lines[1].update(block_begin=11, block_end=16))
    for action in (read_all, verify_dataset):
        with pytest.raises(DatasetCorrupt, match="part-1: block range starts at 11, expected 10"):
            action(small_dataset)


def test_garbage_record_payload_is_not_returned(small_dataset: Path):
    patch(small_dataset / "part-0", 5 + 3, b"\xff\xff")  # inside the first pickle
    with pytest.raises(DatasetCorrupt, match=r"part-0: block 0 \(block 0 of the file\): record at offset 0 does not decode"):
        read_all(small_dataset)
    with pytest.raises(DatasetCorrupt, match="does not decode"):
        verify_dataset(small_dataset)


def test_unsafe_pickle_in_a_dataset_raises_and_runs_nothing(tmp_path: Path):
    target = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {target}",))

    with build_dataset(tmp_path / "ds", "evil", block_size=1024, serializer="raw") as writer:
        writer.write(pickle.dumps(Payload()))
    with pytest.raises(DatasetCorrupt, match=r"evil: block 0 .*UnsafePickle: pickle refers to (posix|os)\.system"):
        read_all(tmp_path / "ds")
    with pytest.raises(DatasetCorrupt, match="UnsafePickle"):
        verify_dataset(tmp_path / "ds")
    assert not target.exists()


def test_verify_catches_what_the_reader_cannot_see(small_dataset: Path):
    patch(small_dataset / "part-0", BLOCK - 1, b"\x01")  # a stray byte after the end-of-block byte
    read_all(small_dataset)  # harmless to a reader
    with pytest.raises(DatasetCorrupt, match=r"part-0: block 0 .*non-zero bytes after the end-of-block byte"):
        verify_dataset(small_dataset)


def test_verify_checks_counts_and_checksum(small_dataset: Path):
    rewrite_meta(small_dataset, lambda lines: lines[0].update(nlines=19))
    rewrite_meta(small_dataset, lambda lines: lines[1].update(checksum="sha256:" + "0" * 64))
    with pytest.raises(DatasetCorrupt) as error:
        verify_dataset(small_dataset)
    assert "part-0: meta.bin says nlines=19, the file holds 20 records" in str(error.value)
    assert "part-1: checksum mismatch" in str(error.value)


def test_verify_refuses_a_newer_format_version(small_dataset: Path):
    rewrite_meta(small_dataset, lambda lines: lines[0].update(format_version=99))
    with pytest.raises(DatasetCorrupt, match="format_version 99 is not one this reader knows"):
        verify_dataset(small_dataset)


def test_zeroed_out_block_inside_a_file_is_found(tmp_path: Path):
    path = write_dataset(tmp_path / "ds", {"a": ["x" * 30] * 4}, block_size=BLOCK)
    patch(path / "a", BLOCK, bytes(BLOCK))
    with pytest.raises(DatasetCorrupt, match=r"a: block 1 .*empty block inside a file with records"):
        verify_dataset(path)


def test_datasets_without_extra_keys_verify(small_dataset: Path):
    def strip(lines):
        for line in lines:
            for key in ("format_version", "serializer", "checksum"):
                del line[key]

    rewrite_meta(small_dataset, strip)
    report = verify_dataset(small_dataset)
    assert report.nlines == 30 and not any(check.checksum_checked for check in report.files)
