"""Compatibility with CPM-Bee's on-disk format, checked by a reader written here from the format facts.

Facts (DESIGN.md): meta.bin is one JSON object a line with file_name, block_begin,
block_end, nbytes, nlines, mask, block_size; a data file is blocks of block_size bytes;
a record is 0x1F, a 4-byte little-endian length and the payload, never crossing a block;
0x00 where a record would start ends the block; nbytes counts 4 + payload per record.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from corpus.dataset import SimpleDataset, build_dataset, iter_records, verify_dataset

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"


def independent_reader(path: Path) -> list[tuple[str, list]]:
    """(file name, records) per file, parsed straight from the format facts."""
    out = []
    lines = [json.loads(line) for line in (path / "meta.bin").read_text(encoding="utf-8").splitlines() if line.strip()]
    expected_begin = 0
    for meta in lines:
        assert meta["block_begin"] == expected_begin
        expected_begin = meta["block_end"]
        data = (path / meta["file_name"]).read_bytes()
        size = meta["block_size"]
        assert len(data) == (meta["block_end"] - meta["block_begin"]) * size
        records, nbytes = [], 0
        for start in range(0, len(data), size):
            pos = start
            while data[pos] == 0x1F:
                length = int.from_bytes(data[pos + 1 : pos + 5], "little")
                assert pos + 5 + length < start + size, "record crosses its block"
                payload = data[pos + 5 : pos + 5 + length]
                records.append(pickle.loads(payload) if payload[0] == 0x80 else json.loads(payload.decode("utf-8")))
                nbytes += 4 + length
                pos += 5 + length
            assert data[pos] == 0 and not any(data[pos : start + size])
        assert (meta["nlines"], meta["nbytes"]) == (len(records), nbytes)
        out.append((meta["file_name"], records))
    return out


@pytest.mark.parametrize("serializer", ["pickle", "json"])
def test_files_we_write_read_back_with_an_independent_reader(tmp_path: Path, serializer: str):
    records = [{"text": "第%d条 <b>" % i * (i % 7), "i": i, "tags": ["x"] * (i % 3)} for i in range(300)]
    with build_dataset(tmp_path, "part-0", block_size=256, serializer=serializer) as writer:
        for record in records[:200]:
            writer.write(record)
    with build_dataset(tmp_path, "part-1", block_size=1024, serializer=serializer) as writer:
        for record in records[200:]:
            writer.write(record)
    assert independent_reader(tmp_path) == [("part-0", records[:200]), ("part-1", records[200:])]


def test_meta_lines_without_extras_equal_cpm_bee_dumps(tmp_path: Path):
    with build_dataset(tmp_path, "part", block_size=64) as writer:
        writer.write("x")
    line = json.loads((tmp_path / "meta.bin").read_text())
    core = {key: line[key] for key in ["file_name", "block_begin", "block_end", "nbytes", "nlines", "mask", "block_size"]}
    # CPM-Bee's FileInfo.dumps(): json.dumps of the seven keys in this order
    assert (tmp_path / "meta.bin").read_text().startswith(json.dumps(core)[:-1] + ", ")


@pytest.mark.parametrize("serializer", ["pickle", "json"])
def test_ccpm_eval_round_trips(tmp_path: Path, serializer: str):
    source = SHARED / "cpm-bee" / "ccpm_eval.jsonl"
    if not source.is_file():
        pytest.skip(f"{source} not present")
    records = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    with build_dataset(tmp_path, "ccpm_eval", block_size=16 << 10, serializer=serializer) as writer:
        for record in records:
            writer.write(record)
    assert list(iter_records(tmp_path)) == records
    assert independent_reader(tmp_path) == [("ccpm_eval", records)]
    assert sorted(map(json.dumps, SimpleDataset(tmp_path))) == sorted(map(json.dumps, records))
    assert verify_dataset(tmp_path).nlines == len(records)
