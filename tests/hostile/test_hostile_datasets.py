"""Hostile and broken datasets: every one is refused with an error naming the file (and block),
none hangs, none is read outside its folder, none crashes the command with a traceback."""

from __future__ import annotations

import json
import os
import pickle
import re
import stat
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corpus.atomic_file import new_file_mode
from corpus.dataset import DatasetCorrupt, build_dataset, read_meta
from corpus.dataset.cli import app
from corpus.dataset.maintenance import merge_dataset
from corpus.dataset.reader import DistributedDataset, iter_records
from corpus.dataset.serializer import PlainDataUnpickler, RecordTooComplex, UnsafePickle, restricted_loads
from corpus.dataset.verify import verify_dataset

runner = CliRunner()


def billion_laughs() -> bytes:
    """A list of 10 references to a list of 10 references ... 9 levels: 10**9 strings from ~300 bytes."""
    level: list = ["lol"]
    for _ in range(9):
        level = [level] * 10
    return pickle.dumps(level, protocol=4)


def self_referencing() -> bytes:
    loop: list = []
    loop.append(loop)
    return pickle.dumps({"text": "a", "loop": loop}, protocol=4)


def hash_bomb(insert: bytes = b"}", levels: int = 60) -> bytes:
    """t0 = (), t1 = (t0, t0) ... t60 shared through the memo (MEMOIZE/BINGET), then t60 as a dict
    key (`}`), set member (`\\x8f`) or frozenset member (`(`): hashing it walks 2**60 tuples."""
    tower = b")\x94" + b"".join(b"h" + bytes([i]) + b"h" + bytes([i]) + b"\x86\x94" for i in range(levels))
    top = b"h" + bytes([levels])
    finish = {b"}": b"}" + top + b"K\x01s", b"\x8f": b"\x8f(" + top + b"\x90", b"(": b"(" + top + b"\x91"}[insert]
    return b"\x80\x04" + tower + finish + b"."


def dup_hash_bomb(levels: int = 60) -> bytes:
    """The same without a memo: DUP then TUPLE2 shares the tuple, 2 bytes a level."""
    return b"\x80\x04})" + b"2\x86" * levels + b"K\x01s."


def raw_dataset(path: Path, payloads: list[bytes], name: str = "part-0") -> Path:
    with build_dataset(path, name, block_size=4096, serializer="raw") as writer:
        for payload in payloads:
            writer.write(payload)
    return path


def plain_dataset(path: Path, name: str = "part-0") -> Path:
    with build_dataset(path, name, block_size=256, serializer="pickle") as writer:
        for i in range(5):
            writer.write({"i": i})
    return path


def rewrite_meta_line(dataset: Path, **update: object) -> None:
    meta = dataset / "meta.bin"
    line = json.loads(meta.read_text().splitlines()[0])
    line.update(update)
    meta.write_text(json.dumps(line) + "\n")


# ---- meta.bin naming files outside the dataset --------------------------------------------


@pytest.mark.parametrize("name", ["./../escape", "../escape", "/etc/passwd", "..", "sub/part-0", "a\\b", "x\0y"])
def test_a_file_name_that_leaves_the_folder_is_refused_when_read_verified_or_merged(tmp_path: Path, name: str) -> None:
    outside = tmp_path / "escape"
    raw_dataset(outside.parent / "escape-src", [pickle.dumps({"secret": 1})])
    hostile = plain_dataset(tmp_path / "hostile")
    rewrite_meta_line(hostile, file_name=name)
    for read in (read_meta, verify_dataset, lambda p: list(iter_records(p)), lambda p: DistributedDataset(p)):
        with pytest.raises(DatasetCorrupt, match=r"meta.bin:1: .*not a plain file name inside the dataset folder"):
            read(hostile)
    dest = plain_dataset(tmp_path / "dest")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(DatasetCorrupt, match="not a plain file name"):
        merge_dataset(dest, hostile)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert [info.file_name for info in read_meta(dest)] == ["part-0"]


def test_merge_cli_refuses_a_traversing_source_with_one_line(tmp_path: Path) -> None:
    hostile = plain_dataset(tmp_path / "hostile")
    rewrite_meta_line(hostile, file_name="./../escape")
    dest = plain_dataset(tmp_path / "dest")
    result = runner.invoke(app, ["merge", str(dest), str(hostile)])
    assert result.exit_code == 1 and "not a plain file name" in result.output
    assert not (tmp_path / "escape").exists()


# ---- records that hang whatever walks them -------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(billion_laughs(), "expands to more than"), (self_referencing(), "nests deeper than")],
    ids=["billion_laughs", "self_reference"],
)
def test_a_pathological_pickle_is_refused_naming_file_and_block_everywhere(tmp_path: Path, payload: bytes, reason: str) -> None:
    dataset = raw_dataset(tmp_path / "ds", [pickle.dumps({"ok": 1}), payload])
    where = rf"ds/part-0: block 0 \(block 0 of the file\): .*{reason}"
    started = time.monotonic()
    with pytest.raises(DatasetCorrupt, match=where):
        verify_dataset(dataset)
    with pytest.raises(DatasetCorrupt, match=where):
        list(iter_records(dataset))
    reader = DistributedDataset(dataset, shuffle=False, max_repeat_times=1)
    assert reader.read() == {"ok": 1}
    with pytest.raises(DatasetCorrupt, match=where):
        reader.read()
    result = runner.invoke(app, ["head", str(dataset)])
    assert result.exit_code == 1 and "part-0: block 0" in result.output and reason in result.output
    assert time.monotonic() - started < 30


# Each reader in a child process with a time limit: before the fix `pickle.loads` itself never
# returned (the C unpickler hashing 2**60 tuples), so an in-process test would hang the suite.
_READ_EVERY_WAY = r"""
import sys
from typer.testing import CliRunner
from corpus.dataset import DatasetCorrupt
from corpus.dataset.cli import app
from corpus.dataset.reader import DistributedDataset, iter_records
from corpus.dataset.verify import verify_dataset

dataset = sys.argv[1]
def distributed():
    reader = DistributedDataset(dataset, shuffle=False, max_repeat_times=1)
    assert reader.read() == {"ok": 1}
    reader.read()
for name, read in (("verify", verify_dataset), ("iter_records", lambda p: list(iter_records(p))),
                   ("DistributedDataset", lambda p: distributed())):
    try:
        read(dataset)
    except DatasetCorrupt as error:
        print(name, "|", error)
    else:
        print(name, "| read it")
result = CliRunner().invoke(app, ["head", dataset])
print("head", "|", result.exit_code, " ".join(result.output.split()))
"""


@pytest.mark.parametrize(
    "payload",
    [hash_bomb(b"}"), hash_bomb(b"\x8f"), hash_bomb(b"("), dup_hash_bomb()],
    ids=["dict_key", "set_member", "frozenset_member", "dup_no_memo"],
)
def test_a_hash_bomb_pickle_is_refused_quickly_naming_file_and_block_everywhere(tmp_path: Path, payload: bytes) -> None:
    import subprocess
    import sys

    assert len(payload) < 400
    dataset = raw_dataset(tmp_path / "ds", [pickle.dumps({"ok": 1}), payload])
    started = time.monotonic()
    child = subprocess.run([sys.executable, "-c", _READ_EVERY_WAY, str(dataset)], capture_output=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert child.returncode == 0, child.stderr.decode()
    lines = dict(line.split(" | ", 1) for line in child.stdout.decode().splitlines())
    assert sorted(lines) == ["DistributedDataset", "head", "iter_records", "verify"]
    for name in ("verify", "DistributedDataset"):
        assert re.search(r"ds/part-0: block 0 \(block 0 of the file\): record at offset 27 does not decode.*"
                         r"RecordTooComplex: pickle of \d+ bytes makes the unpickler hash more than 65,536", lines[name])
    assert re.search(r"ds/part-0: block 0 .*RecordTooComplex: .*hash more than", lines["iter_records"])
    assert lines["head"].startswith("1 ") and "part-0: block 0" in lines["head"] and "RecordTooComplex" in lines["head"]
    assert time.monotonic() - started < 30


def test_a_protocol_2_set_of_shared_tuples_is_refused_as_it_is_built() -> None:
    """Old protocols build a set by calling `set` (REDUCE), inside the unpickler: bounded there.
    26 levels (2**27 steps, a second or two) so that without the bound the test fails, not hangs."""
    payload = b"\x80\x02c__builtin__\nset\n])" + b"2\x86" * 26 + b"a\x85R."
    started = time.process_time()
    with pytest.raises(RecordTooComplex, match="hash"):
        restricted_loads(payload)
    with pytest.raises(RecordTooComplex, match="hash"):
        PlainDataUnpickler().loads(payload)
    assert time.process_time() - started < 5
    assert restricted_loads(pickle.dumps({(1, (2, 3)), "a"}, protocol=2)) == {(1, (2, 3)), "a"}


def test_a_protocol_2_bytearray_of_a_huge_size_is_refused_before_allocating() -> None:
    payload = b"\x80\x02c__builtin__\nbytearray\n\x8a\x06\x00\x00\x00\x00\x00\x01\x85R."  # bytearray(2**40)
    with pytest.raises(UnsafePickle, match="bytearray"):
        restricted_loads(payload)
    assert restricted_loads(pickle.dumps(bytearray(b"\x00\xffab"), protocol=2)) == bytearray(b"\x00\xffab")


def test_records_with_shared_tuple_keys_of_real_size_still_load() -> None:
    pair = (1, ("a", 2))
    record = {"pairs": {pair: "x", (pair, pair): "y"}, "again": [pair] * 100, "tags": frozenset({pair})}
    for protocol in range(6):
        payload = pickle.dumps(record, protocol=protocol)
        assert restricted_loads(payload) == record
        assert PlainDataUnpickler().loads(payload) == record


def test_the_billion_laughs_pickle_is_small(tmp_path: Path) -> None:
    assert len(billion_laughs()) < 400
    with pytest.raises(RecordTooComplex):
        restricted_loads(billion_laughs())


def test_records_of_real_shape_pass_the_shape_check() -> None:
    record = {"input": "x" * 1000, "<ans>": {"a": [1, 2, 3], "b": [{"c": (1, 2)}] * 50}, "tags": {"a", "b"}}
    assert restricted_loads(pickle.dumps(record, protocol=4)) == record
    deep: list = []
    for _ in range(90):
        deep = [deep]
    assert restricted_loads(pickle.dumps(deep)) == deep


# ---- files that are not what meta.bin says -------------------------------------------------


def test_verify_refuses_a_fifo_as_data_file_instead_of_hanging(tmp_path: Path) -> None:
    dataset = plain_dataset(tmp_path / "ds")
    (dataset / "part-0").unlink()
    os.mkfifo(dataset / "part-0")
    for read in (verify_dataset, lambda p: list(iter_records(p)), lambda p: DistributedDataset(p).read()):
        with pytest.raises(DatasetCorrupt, match=r"ds/part-0: not a regular file \(a FIFO\)"):
            read(dataset)


def test_a_fifo_as_meta_bin_is_refused(tmp_path: Path) -> None:
    dataset = tmp_path / "ds"
    dataset.mkdir()
    os.mkfifo(dataset / "meta.bin")
    result = runner.invoke(app, ["verify", str(dataset)])
    assert result.exit_code == 1 and "meta.bin: not a regular file (a FIFO)" in result.output


def test_a_huge_block_size_is_refused_before_any_read(tmp_path: Path) -> None:
    dataset = plain_dataset(tmp_path / "ds")
    rewrite_meta_line(dataset, block_size=1 << 40)
    result = runner.invoke(app, ["verify", str(dataset)])
    assert result.exit_code == 1 and "meta.bin:1" in result.output and "block_size" in result.output


def test_a_block_size_larger_than_the_file_fails_naming_the_file_not_in_pread(tmp_path: Path) -> None:
    dataset = plain_dataset(tmp_path / "ds")
    rewrite_meta_line(dataset, block_size=1 << 30)
    with pytest.raises(DatasetCorrupt, match=r"ds/part-0: .*truncated: meta.bin gives it 1 blocks of 1073741824 bytes"):
        verify_dataset(dataset)


def test_a_non_utf8_meta_bin_is_named_with_its_line(tmp_path: Path) -> None:
    dataset = plain_dataset(tmp_path / "ds")
    meta = dataset / "meta.bin"
    meta.write_bytes(meta.read_bytes() + b'{"file_name": "\xff\xfe"}\n')
    result = runner.invoke(app, ["verify", str(dataset)])
    assert result.exit_code == 1 and "ds/meta.bin:2: not UTF-8 text (byte 0xff" in result.output


# ---- file modes -----------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_data_files_and_meta_bin_get_one_mode_from_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        assert new_file_mode() == 0o666 & ~umask
        dataset = plain_dataset(tmp_path / "ds")
        merge_dataset(dataset, plain_dataset(tmp_path / "other", name="part-1"))
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in dataset.iterdir() if not p.name.startswith(".")}
    assert modes == {"meta.bin": 0o666 & ~umask, "part-0": 0o666 & ~umask, "part-1": 0o666 & ~umask}


# --- the fast unpickling path is set up by its reader, in the reader's process ----------------------


class _Touches:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


_IN_A_FRESH_PROCESS = r"""
import pickle, sys
from corpus.dataset import serializer
assert serializer._hook_installed is None, "importing corpus.dataset installed an audit hook"
unpickler, dataset, crafted = pickle.loads(sys.stdin.buffer.read())  # both set their guard up again here
assert serializer._hook_installed is True
for read in (lambda: unpickler.loads(crafted), dataset.read):
    try:
        read()
    except Exception as error:
        print(type(error).__name__)
    else:
        print("read it")
"""


def test_a_fast_reader_moved_to_another_process_still_refuses_pickles_that_run_code(tmp_path: Path) -> None:
    import subprocess
    import sys

    from corpus.dataset import PlainDataUnpickler

    target = tmp_path / "pwned"
    crafted = pickle.dumps(_Touches(str(target)))
    with build_dataset(tmp_path / "ds", "data", serializer="raw") as writer:
        writer.write(crafted)
    dataset = DistributedDataset(tmp_path / "ds", shuffle=False, max_repeat_times=1)
    message = pickle.dumps((PlainDataUnpickler(), dataset, crafted))
    child = subprocess.run([sys.executable, "-c", _IN_A_FRESH_PROCESS], input=message, capture_output=True,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}, timeout=120)
    assert child.returncode == 0, child.stderr.decode()
    assert child.stdout.decode().split() == ["UnsafePickle", "DatasetCorrupt"]
    assert not target.exists()
