"""Reading: sharding by block, epochs, exact resume, re-sharding, and following meta.bin."""

from __future__ import annotations

import json
import pickle
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataset_fixtures import write_dataset
from corpus.dataset.blockfile import iter_file_records
from corpus.dataset import (
    DistributedDataset,
    SimpleDataset,
    build_dataset,
    iter_records,
    mask_dataset,
    merge_state_dicts,
    read_meta,
)


def read_epoch(dataset: DistributedDataset) -> list:
    out = []
    while True:
        try:
            out.append(dataset.read())
        except EOFError:
            return out


def many_files(tmp_path: Path, sizes=(7, 13, 1, 9)) -> tuple[Path, list[int]]:
    """Files of 20-byte-text records, 64-byte blocks (one record a block for 2-digit ids)."""
    files, start = {}, 0
    for index, size in enumerate(sizes):
        files[f"part-{index}"] = [{"i": i} for i in range(start, start + size)]
        start += size
    return write_dataset(tmp_path / "ds", files, block_size=64), list(range(start))


def test_simple_dataset_reads_every_record_once_and_len_is_nlines(small_dataset: Path):
    dataset = SimpleDataset(small_dataset)
    assert len(dataset) == 30
    assert sorted(record["i"] for record in dataset) == list(range(30))
    assert sorted(record["i"] for record in dataset) == list(range(30))  # iterable again


def test_position_names_the_file_block_and_offset_of_the_record_just_read(tmp_path: Path):
    path = write_dataset(tmp_path / "ds", {"a": [{"i": i} for i in range(20)], "b": [{"i": i} for i in range(20, 45)]}, block_size=128)
    where = {}
    for info in read_meta(path):
        for block, offset, payload in iter_file_records(path, info):
            where[pickle.loads(payload)["i"]] = (info.file_name, block - info.block_begin, offset)
    reader = DistributedDataset(path, rank=1, world_size=2, seed=4)
    with pytest.raises(RuntimeError, match="no record"):
        reader.position()
    for _ in range(60):  # more than an epoch: positions stay right across block and epoch ends
        record = reader.read()
        info, block, offset = reader.position()
        assert (info.file_name, block, offset) == where[record["i"]]


def test_unshuffled_reading_goes_through_blocks_from_the_last(small_dataset: Path):
    # CPM-Bee pops blocks from the end of the list; records keep their order inside a block
    records = [r["i"] for r in SimpleDataset(small_dataset, shuffle=False)]
    assert records[:2] == [28, 29] and sorted(records) == list(range(30))


def test_shuffle_is_seeded(small_dataset: Path):
    order = lambda seed: [r["i"] for r in SimpleDataset(small_dataset, seed=seed)]  # noqa: E731
    assert order(1) == order(1) != order(2)


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_ranks_cover_every_record_exactly_once_per_epoch(tmp_path: Path, world_size: int):
    path, expected = many_files(tmp_path)
    seen: Counter = Counter()
    for rank in range(world_size):
        dataset = DistributedDataset(path, rank, world_size, max_repeat_times=2)
        records = read_epoch(dataset)
        half = len(records) // 2
        first, second = records[:half], records[half:]
        assert sorted(r["i"] for r in first) == sorted(r["i"] for r in second)  # two equal epochs
        seen.update(r["i"] for r in first)
    assert seen == Counter(expected)


def test_ranks_read_blocks_b_mod_world_size(tmp_path: Path):
    path = write_dataset(tmp_path / "ds", {"a": [str(i) * 30 for i in range(10)]}, block_size=64)
    dataset = DistributedDataset(path, 1, 3, max_repeat_times=1, shuffle=False)
    assert read_epoch(dataset) == [str(i) * 30 for i in (7, 4, 1)]


@given(stop=st.integers(0, 80), seed=st.integers(0, 3), world_size=st.integers(1, 3), data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_resume_reads_exactly_the_next_record(tmp_path_factory, stop, seed, world_size, data):
    path, _ = many_files(tmp_path_factory.mktemp("r"), sizes=(5, 11, 3))
    rank = data.draw(st.integers(0, world_size - 1))
    reader = DistributedDataset(path, rank, world_size, seed=seed)
    for _ in range(stop):
        reader.read()
    state = json.loads(json.dumps(reader.state_dict()))  # plain data: survives JSON
    expected = [reader.read() for _ in range(40)]
    resumed = DistributedDataset(path, rank, world_size, seed=99)
    resumed.load_state_dict(state)
    assert [resumed.read() for _ in range(40)] == expected


def test_resume_at_every_position_of_two_epochs(small_dataset: Path):
    reference = DistributedDataset(small_dataset, max_repeat_times=2)
    states, records = [], []
    for _ in range(60):
        states.append(reference.state_dict())
        records.append(reference.read())
    for position, state in enumerate(states):
        resumed = DistributedDataset(small_dataset, max_repeat_times=2)
        resumed.load_state_dict(state)
        assert read_epoch(resumed) == records[position:]


def test_state_dict_of_another_world_size_needs_strict_false(small_dataset: Path):
    state = DistributedDataset(small_dataset, 0, 2).state_dict()
    with pytest.raises(ValueError, match=r"world_size changed \(2 -> 3\)"):
        DistributedDataset(small_dataset, 0, 3).load_state_dict(state)
    with pytest.raises(ValueError, match="needs the states of all 2 ranks"):
        DistributedDataset(small_dataset, 0, 3).load_state_dict(state, strict=False)


@given(old=st.integers(1, 4), new=st.integers(1, 4), steps=st.lists(st.integers(0, 12), min_size=4, max_size=4))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_world_size_change_loses_and_repeats_no_record(tmp_path_factory, old, new, steps):
    path, expected = many_files(tmp_path_factory.mktemp("w"))
    read_before: Counter = Counter()
    states = []
    for rank in range(old):
        reader = DistributedDataset(path, rank, old, max_repeat_times=1)
        for _ in range(steps[rank]):
            try:
                read_before[reader.read()["i"]] += 1
            except EOFError:
                break
        states.append(reader.state_dict())
    merged = merge_state_dicts(states[::-1])  # order of the all-gather does not matter
    read_after: Counter = Counter()
    for rank in range(new):
        reader = DistributedDataset(path, rank, new, max_repeat_times=1)
        reader.load_state_dict(merged, strict=False)
        read_after.update(r["i"] for r in read_epoch(reader))
    assert read_before + read_after == Counter(expected)


def test_merge_state_dicts_refuses_repeated_ranks_and_mixed_world_sizes(small_dataset: Path):
    a = DistributedDataset(small_dataset, 0, 2).state_dict()
    with pytest.raises(ValueError, match="repeat ranks"):
        merge_state_dicts([a, a])
    with pytest.raises(ValueError, match="world sizes"):
        merge_state_dicts([a, DistributedDataset(small_dataset, 0, 1).state_dict()])


def test_file_appended_while_reading_joins_the_current_epoch(small_dataset: Path):
    reader = DistributedDataset(small_dataset, max_repeat_times=1)
    first = [reader.read()["i"] for _ in range(3)]
    write_dataset(small_dataset, {"late": [{"i": i} for i in range(100, 104)]})
    rest = [r["i"] for r in read_epoch(reader)]
    assert sorted(first + rest) == list(range(30)) + list(range(100, 104))


def test_masked_file_leaves_the_epoch(small_dataset: Path):
    reader = DistributedDataset(small_dataset, max_repeat_times=2, shuffle=False)
    first = [reader.read()["i"] for _ in range(2)]  # the last block of part-1: 28, 29
    mask_dataset(small_dataset, "part-1")
    rest = [r["i"] for r in read_epoch(reader)]
    assert first == [28, 29]
    assert sorted(rest) == sorted(list(range(20)) * 2)  # rest of epoch 1, then epoch 2, without part-1


def test_resume_after_a_file_was_appended_matches_the_uninterrupted_reader(small_dataset: Path):
    reader = DistributedDataset(small_dataset, seed=5)
    for _ in range(7):
        reader.read()
    state = reader.state_dict()
    write_dataset(small_dataset, {"late": [{"i": i} for i in range(100, 110)]})
    expected = [reader.read() for _ in range(50)]
    resumed = DistributedDataset(small_dataset, seed=5)
    resumed.load_state_dict(state)
    assert [resumed.read() for _ in range(50)] == expected


def test_rank_without_blocks_gets_eof_or_a_clear_error(tmp_path: Path):
    path = write_dataset(tmp_path / "ds", {"a": ["x" * 30]}, block_size=64)
    for epochs in (1, 3):
        with pytest.raises(EOFError):
            DistributedDataset(path, 1, 2, max_repeat_times=epochs).read()
    with pytest.raises(RuntimeError, match="rank 1 of 2 has no records"):
        DistributedDataset(path, 1, 2).read()


def test_endless_reading_of_a_rank_whose_blocks_hold_no_records_is_an_error(tmp_path: Path):
    path = write_dataset(tmp_path / "ds", {"empty": []}, block_size=64)
    with pytest.raises(RuntimeError, match="rank 0 of 1 has no records"):
        DistributedDataset(path).read()


def test_empty_dataset_iterates_to_nothing_again_and_again(tmp_path: Path):
    dataset = SimpleDataset(write_dataset(tmp_path / "ds", {"empty": []}, block_size=64))
    assert len(dataset) == 0 and list(dataset) == [] and list(dataset) == []


def test_missing_data_file_is_skipped_with_a_warning_as_cpm_bee_does(small_dataset: Path):
    (small_dataset / "part-1").unlink()
    with pytest.warns(UserWarning, match="part-1: listed in meta.bin but missing"):
        records = [r["i"] for r in SimpleDataset(small_dataset)]
    assert sorted(records) == list(range(20))


def test_a_cpm_bee_state_dict_resumes_at_the_same_record(small_dataset: Path):
    # CPM-Bee's layout for world size 1: states (1, n_unused), block (1, 4); torch tensors
    # there, any nested sequences here. Unshuffled, both readers take blocks from the end.
    reader = DistributedDataset(small_dataset, shuffle=False, max_repeat_times=1)
    for _ in range(5):
        reader.read()
    ours = reader.state_dict()["ranks"][0]
    cpm_bee_state = {"states": [ours["unused"]], "block": [[*ours["block"][:2], len(ours["unused"]), 1]]}
    expected = read_epoch(reader)
    resumed = DistributedDataset(small_dataset, shuffle=False, max_repeat_times=1)
    resumed.load_state_dict(cpm_bee_state)
    assert read_epoch(resumed) == expected


def test_plain_data_pickles_of_older_protocols_are_read(tmp_path: Path):
    import pickle

    records = [{"tags": {"a", "b"}}, frozenset({1}), b"\x00\xff", bytearray(b"x")]
    with build_dataset(tmp_path / "ds", "old", block_size=256, serializer="raw") as writer:
        for record in records:
            writer.write(pickle.dumps(record, protocol=2))
    assert list(iter_records(tmp_path / "ds")) == records
    # SimpleDataset's order differs; compare as multisets with == (a set's repr depends on the hash seed)
    read = list(SimpleDataset(tmp_path / "ds"))
    assert len(read) == len(records) and all(read.count(record) == 1 for record in records)
