"""Big input files cut into line-aligned byte ranges: every line read exactly once, by one
range, with its number in the whole file."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.pipeline import ranges as ranges_module
from corpus.pipeline.ranges import split_into_ranges
from corpus.pipeline.read import list_input_files, read_lines
from schemas.build_config import ReadConfig

PIECES = [b"a", b"bcd", b"\r", b"\n", b"\r\n", b"\xef\xbb\xbf", b"x" * 13, "中文".encode()]


def _whole_and_ranges(folder, data: bytes, split_bytes: int):
    (folder / "a.txt").write_bytes(data)
    files, _ = list_input_files([str(folder)], ReadConfig())
    return files[0], split_into_ranges(files[0], split_bytes)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=80), st.integers(1, 40), st.integers(1, 9))
def test_ranges_read_the_same_lines_as_the_whole_file(tmp_path_factory, pieces, split_bytes, scan_bytes):
    data = b"".join(pieces)
    saved = ranges_module.SCAN_BYTES
    ranges_module.SCAN_BYTES = scan_bytes  # line ends fall across the counting pass's chunks
    try:
        whole, parts = _whole_and_ranges(tmp_path_factory.mktemp("r"), data, split_bytes)
    finally:
        ranges_module.SCAN_BYTES = saved
    assert list(read_lines(whole, 8)) == [line for part in parts for line in read_lines(part, 8)]
    assert [p.part for p in parts] == list(range(len(parts))) and {p.parts for p in parts} == {len(parts)}
    assert parts[0].start == 0 and parts[-1].end in (None, len(data))
    assert all(a.end == b.start for a, b in itertools.pairwise(parts))
    assert all(data[p.start - 1:p.start] == b"\n" for p in parts[1:])  # cut right after a line end


def test_big_plain_file_is_cut_near_each_split_and_compressed_files_stay_whole(tmp_path):
    line = b"0123456789" * 9 + b"\n"  # 91 bytes
    whole, parts = _whole_and_ranges(tmp_path, line * 100, 1000)
    assert [(p.start, p.end, p.first_line) for p in parts][:3] == [(0, 1001, 1), (1001, 2002, 12), (2002, 3003, 23)]
    assert len(parts) == 10 and len({p.key for p in parts}) == 10 and parts[0].key != whole.key
    assert len({p.fingerprint for p in parts}) == 10
    (tmp_path / "a.txt").unlink()
    (tmp_path / "b.txt.gz").write_bytes(b"\x1f\x8b" + b"\0" * 5000)
    files, _ = list_input_files([str(tmp_path)], ReadConfig())
    assert split_into_ranges(files[0], 1000) == files
