import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corpus.dataset import DatasetCorrupt, read_meta, write_meta
from schemas import FileInfo
from schemas.fileinfo import file_name_problem


def _cpm_bee_dumps(info: dict) -> str:
    """CPM-Bee's FileInfo.dumps(): json.dumps of its seven fields in this order."""
    keys = ["file_name", "block_begin", "block_end", "nbytes", "nlines", "mask", "block_size"]
    return json.dumps({key: info[key] for key in keys})


@given(
    st.text(min_size=1).filter(lambda s: s.strip() == s and "\n" not in s and file_name_problem(s) is None),
    st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**12), st.integers(0, 10**9), st.booleans(),
)
def test_line_is_byte_identical_to_cpm_bee(name, begin, nblocks, nbytes, nlines, mask):
    info = {"file_name": name, "block_begin": begin, "block_end": begin + nblocks, "nbytes": nbytes,
            "nlines": nlines, "mask": mask, "block_size": 16 << 20}
    assert FileInfo(**info).to_line() == _cpm_bee_dumps(info)


def test_unknown_keys_are_kept_and_written_back(tmp_path):
    line = {"file_name": "part-0", "block_begin": 0, "block_end": 2, "nbytes": 10, "nlines": 1, "mask": False,
            "block_size": 1024, "sha256": "00ff", "format_version": 1}
    (tmp_path / "meta.bin").write_text(json.dumps(line) + "\n")
    (info,) = read_meta(tmp_path)
    assert info.extra_keys == {"sha256": "00ff", "format_version": 1}
    write_meta(tmp_path, [info])
    assert json.loads((tmp_path / "meta.bin").read_text()) == line


def test_non_contiguous_ranges_name_the_file(tmp_path):
    infos = [FileInfo(file_name="a", block_begin=0, block_end=2, nbytes=0, nlines=0),
             FileInfo(file_name="b", block_begin=3, block_end=4, nbytes=0, nlines=0)]
    (tmp_path / "meta.bin").write_text("".join(info.to_line() + "\n" for info in infos))
    with pytest.raises(DatasetCorrupt, match="b: block range starts at 3, expected 2"):
        read_meta(tmp_path)


def test_bad_line_names_file_line_and_field(tmp_path):
    (tmp_path / "meta.bin").write_text(json.dumps({"file_name": "a", "block_begin": 0, "block_end": "x",
                                                   "nbytes": 0, "nlines": 0}) + "\n")
    with pytest.raises(DatasetCorrupt, match=r"meta.bin:1: block_end"):
        read_meta(tmp_path)
