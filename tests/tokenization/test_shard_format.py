"""The token shard file: whatever records go in come back out, with their positions, ext states and key."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenization import shard_format
from tokenization.shard_format import ShardWriter, ext_states, iter_shard_rows, read_shard, shard_key

_ints = st.lists(st.integers(min_value=-(2**31), max_value=2**31 - 1), max_size=40)
_ext_token = st.one_of(
    st.from_regex(r"<(option|mask|ans)_[0-9]{1,2}>", fullmatch=True),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6).filter(lambda t: "<" not in t),
)


@st.composite
def converted_records(draw):
    """(record index, convert_data_to_id-shaped tuple, ext states) with consistent lengths."""
    n = draw(st.integers(min_value=0, max_value=30))
    ids = np.array(draw(st.lists(st.integers(0, 2**31 - 1), min_size=n, max_size=n)), dtype=np.int32)
    subs = np.array(draw(st.lists(st.integers(0, 50), min_size=n, max_size=n)), dtype=np.int32)
    context = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=np.int8)
    segments = np.array(draw(st.lists(st.integers(0, 9), min_size=n, max_size=n)), dtype=np.int32)
    num_segments = draw(st.integers(1, 5))
    rel = np.array(draw(st.lists(st.integers(0, 300), min_size=num_segments**2, max_size=num_segments**2)), dtype=np.int32)
    tokens = draw(st.lists(_ext_token, unique=True, max_size=5))
    ext_table = {1000 + i: token for i, token in enumerate(tokens)}
    token_id_table: dict[str, dict[int, int]] = {}
    for idx, token in ext_table.items():
        members = token_id_table.setdefault(shard_format.family_of(token), {})
        members[idx] = len(members)
    states = {"ext_table": ext_table, "token_id_table": token_id_table}
    ext_positions = [(p, draw(st.sampled_from(sorted(ext_table)))) for p in range(n) if ext_table and draw(st.booleans())]
    where = {"block": draw(st.integers(0, 2**31 - 1)), "offset": draw(st.integers(0, 2**31 - 1)),
             "ext_positions": ext_positions, "answer_dicts": draw(st.integers(0, 9))}  # fmt: skip
    return (ids, subs, context, segments, rel, num_segments, states), where


@settings(max_examples=40, deadline=None)
@given(records=st.lists(converted_records(), max_size=12), batch_rows=st.integers(1, 5))
def test_records_round_trip_through_a_shard(records, batch_rows):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "part.arrow"
        original = shard_format.BATCH_ROWS
        shard_format.BATCH_ROWS = batch_rows  # exercise several record batches
        try:
            with ShardWriter(path, {"file_name": "part"}) as writer:
                for index, (converted, where) in enumerate(records):
                    writer.add(converted, record=index * 2, **where)
        finally:
            shard_format.BATCH_ROWS = original
        rows = list(iter_shard_rows(path))
        assert len(rows) == len(records) == read_shard(path).num_rows
        for index, (row, (converted, where)) in enumerate(zip(rows, records)):
            ids, subs, context, segments, rel, num_segments, states = converted
            assert row["record"] == index * 2
            assert (row["block"], row["offset"], row["answer_dicts"]) == (where["block"], where["offset"], where["answer_dicts"])
            assert list(zip(row["ext_positions"].tolist(), row["ext_at"].tolist())) == where["ext_positions"]
            for name, expected in [("ids", ids), ("id_subs", subs), ("context", context), ("segments", segments), ("segment_rel", rel)]:
                assert row[name].dtype == expected.dtype and row[name].tolist() == expected.tolist()
            assert row["num_segments"] == num_segments and row["length"] == len(ids)
            assert ext_states(row) == states
        assert shard_key(path) == {"file_name": "part"}


def test_a_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "part.arrow"
    with pytest.raises(RuntimeError):
        with ShardWriter(path, {}) as writer:
            converted = (np.zeros(1, np.int32),) * 5 + (1, {"ext_table": {}, "token_id_table": {}})
            writer.add(converted, record=0, block=0, offset=0, ext_positions=[], answer_dicts=0)
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
