"""Writing data files: blocks, records, meta.bin lines, and what happens when writing fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus.dataset import FORMAT_VERSION, JsonSerializer, PickleSerializer, RecordTooLarge, build_dataset, iter_records, read_meta, verify_dataset


def records_of_block(data: bytes, block_size: int, block: int) -> list[bytes]:
    out, pos = [], block * block_size
    while data[pos] == 0x1F:
        length = int.from_bytes(data[pos + 1 : pos + 5], "little")
        out.append(data[pos + 5 : pos + 5 + length])
        pos += 5 + length
    return out


texts = st.lists(st.text(max_size=40), max_size=40)


@given(records=texts, block_size=st.sampled_from([64, 65, 100, 128, 257, 1024, 4096]), serializer=st.sampled_from(["pickle", "json"]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_round_trip_for_both_serializers_and_many_block_sizes(tmp_path_factory, records, block_size, serializer):
    encode = PickleSerializer().serialize if serializer == "pickle" else JsonSerializer().serialize
    records = [{"text": text} for text in records if len(encode({"text": text})) <= block_size - 6]
    path = tmp_path_factory.mktemp("ds")
    with build_dataset(path, "part", block_size=block_size, serializer=serializer) as writer:
        for record in records:
            writer.write(record)
    assert list(iter_records(path)) == records
    (info,) = read_meta(path)
    assert info.nlines == len(records) == writer.nlines
    assert info.nbytes == writer.nbytes
    assert (path / "part").stat().st_size == info.nblocks * block_size == writer.nblocks * block_size
    verify_dataset(path)


def test_record_exactly_filling_a_block_leaves_one_zero_byte(tmp_path: Path):
    payload = b"x" * (64 - 6)  # magic + length + payload + the end-of-block byte = 64
    with build_dataset(tmp_path, "part", block_size=64, serializer="raw") as writer:
        writer.write(payload)
        writer.write(payload)
    data = (tmp_path / "part").read_bytes()
    assert len(data) == 128 and writer.nblocks == 2
    assert data[:5] == b"\x1f" + (58).to_bytes(4, "little") and data[63] == 0
    assert records_of_block(data, 64, 0) == [payload] == records_of_block(data, 64, 1)


def test_record_that_does_not_fit_the_rest_of_a_block_starts_the_next(tmp_path: Path):
    with build_dataset(tmp_path, "part", block_size=64, serializer="raw") as writer:
        writer.write(b"a" * 30)  # 35 bytes
        writer.write(b"b" * 24)  # 35 + 29 + 1 > 64: next block
    data = (tmp_path / "part").read_bytes()
    assert data[35:64] == bytes(29)
    assert records_of_block(data, 64, 1) == [b"b" * 24]


def test_record_larger_than_a_block_is_a_clear_error_and_changes_nothing(tmp_path: Path):
    with build_dataset(tmp_path, "part", block_size=64, serializer="raw") as writer:
        writer.write(b"a")
        with pytest.raises(RecordTooLarge, match="payload of 59 bytes does not fit in a block of 64 bytes"):
            writer.write(b"x" * 59)
        writer.write(b"b")
    assert writer.nlines == 2 and writer.nblocks == 1
    assert list(iter_records(tmp_path, serializer="raw")) == [b"a", b"b"]


def test_empty_file_has_one_zero_block_like_cpm_bee(tmp_path: Path):
    with build_dataset(tmp_path, "empty", block_size=64):
        pass
    assert (tmp_path / "empty").read_bytes() == bytes(64)
    (info,) = read_meta(tmp_path)
    assert (info.block_begin, info.block_end, info.nlines, info.nbytes) == (0, 1, 0, 0)


def test_meta_line_has_cpm_bee_keys_first_then_version_serializer_checksum(tmp_path: Path):
    with build_dataset(tmp_path, "part", block_size=64, serializer="json", extra_meta={"escaped": True}) as writer:
        writer.write({"a": 1})
    line = json.loads((tmp_path / "meta.bin").read_text())
    assert list(line)[:7] == ["file_name", "block_begin", "block_end", "nbytes", "nlines", "mask", "block_size"]
    assert line["format_version"] == FORMAT_VERSION and line["serializer"] == "json" and line["escaped"] is True
    assert line["checksum"].startswith("sha256:")


def test_appending_files_continues_the_block_range(tmp_path: Path):
    for name, count in [("a", 5), ("b", 3)]:
        with build_dataset(tmp_path, name, block_size=64) as writer:
            for i in range(count):
                writer.write(str(i) * 20)  # 37-byte records: one a block
    a, b = read_meta(tmp_path)
    assert (a.block_begin, a.block_end, b.block_begin, b.block_end) == (0, 5, 5, 8)
    assert list(iter_records(tmp_path)) == [str(i) * 20 for i in [0, 1, 2, 3, 4, 0, 1, 2]]


def test_duplicate_file_name_is_refused_before_writing(tmp_path: Path):
    with build_dataset(tmp_path, "part", block_size=64):
        pass
    with pytest.raises(FileExistsError, match="'part' is already in meta.bin"):
        build_dataset(tmp_path, "part", block_size=64)


@pytest.mark.parametrize("name", ["", "a/b", "../x", ".hidden", "meta.bin"])
def test_bad_file_names_are_refused(tmp_path: Path, name: str):
    with pytest.raises(ValueError, match="bad data file name"):
        build_dataset(tmp_path, name)


def test_exception_while_writing_registers_nothing_and_leaves_no_file(tmp_path: Path):
    with build_dataset(tmp_path, "keep", block_size=64) as writer:
        writer.write(1)
    before = (tmp_path / "meta.bin").read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with build_dataset(tmp_path, "broken", block_size=64) as writer:
            for i in range(100):
                writer.write(i)
            raise RuntimeError("boom")
    assert (tmp_path / "meta.bin").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".meta.lock") == ["keep", "meta.bin"]


def test_data_file_appears_under_its_name_only_when_complete(tmp_path: Path):
    with build_dataset(tmp_path, "part", block_size=64) as writer:
        for i in range(200):
            writer.write(i)
        assert not (tmp_path / "part").exists()
    assert (tmp_path / "part").exists()


def test_concurrent_writers_of_one_dataset_all_get_registered(tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    def write(index: int) -> None:
        with build_dataset(tmp_path, f"part-{index}", block_size=64) as writer:
            for i in range(20):
                writer.write({"i": index * 100 + i})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    infos = read_meta(tmp_path)
    assert sorted(info.file_name for info in infos) == [f"part-{i}" for i in range(8)]
    assert sorted(r["i"] for r in iter_records(tmp_path)) == sorted(i * 100 + j for i in range(8) for j in range(20))
    verify_dataset(tmp_path)
