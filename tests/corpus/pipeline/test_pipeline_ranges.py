"""Big input files cut into line-aligned byte ranges: every line read exactly once, by one
range, with its number in the whole file; multi-frame `.zst` files cut at frame starts; files
that must be read whole (gzip, a single zstd frame) named by the build."""

from __future__ import annotations

import gzip
import itertools

import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.pipeline import ranges as ranges_module
from corpus.pipeline.ranges import split_file, split_files, split_into_ranges
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
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress(line * 100))
    files, _ = list_input_files([str(tmp_path)], ReadConfig())
    assert split_into_ranges(files[0], 1000) == files
    assert split_file(files[0], 1000)[1] is None  # 9100 bytes of text, under 1000 bytes compressed: not big
    parts, note = split_file(files[0], 10)
    assert parts == files and "b.txt.gz: gzip, read whole by one worker" in note


def _frames(pieces: list[bytes], frame_ends: list[int]) -> bytes:
    """`pieces` joined and compressed as one zstd frame per stretch between `frame_ends` (byte offsets)."""
    data = b"".join(pieces)
    bounds = sorted({0, len(data), *(e % (len(data) + 1) for e in frame_ends)})
    compressor = zstandard.ZstdCompressor()
    return b"".join(compressor.compress(data[a:b]) for a, b in itertools.pairwise(bounds))


def _zst_whole_and_ranges(folder, compressed: bytes, split_bytes: int):
    (folder / "a.txt.zst").write_bytes(compressed)
    files, _ = list_input_files([str(folder)], ReadConfig())
    return files[0], split_into_ranges(files[0], split_bytes)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=80), st.lists(st.integers(0, 400), max_size=12), st.integers(1, 40))
def test_zstd_ranges_read_the_same_lines_as_the_whole_file(tmp_path_factory, pieces, frame_ends, split_bytes):
    saved = ranges_module.ZSTD_MAX_RATIO
    ranges_module.ZSTD_MAX_RATIO = 1 << 20  # scan however small the file
    try:
        whole, parts = _zst_whole_and_ranges(tmp_path_factory.mktemp("z"), _frames(pieces, frame_ends), split_bytes)
    finally:
        ranges_module.ZSTD_MAX_RATIO = saved
    assert list(read_lines(whole, 8)) == [line for part in parts for line in read_lines(part, 8)]
    assert [p.part for p in parts] == list(range(len(parts))) and {p.parts for p in parts} == {len(parts)}
    assert parts[0].start == 0 and parts[-1].end is None
    assert all(a.end == b.start and a.frame_start <= b.frame_start <= b.start for a, b in itertools.pairwise(parts))
    data = b"".join(pieces)
    assert all(data[p.start - 1:p.start] == b"\n" for p in parts[1:])  # cut right after a line end


def test_zstd_file_in_frames_is_cut_at_frame_starts_and_one_frame_is_read_whole(tmp_path):
    line = b"0123456789" * 9 + b"\n"  # 91 bytes
    compressor = zstandard.ZstdCompressor()
    frames = [compressor.compress(line * 20 + b"tail of a line ") for _ in range(10)]  # 1835 bytes a frame
    whole, parts = _zst_whole_and_ranges(tmp_path, b"".join(frames), 20)  # scanned: 16 x compressed > 20
    size = 1835
    # the first frame start past each 20 bytes is the next frame; the cut: the line start after it
    assert [(p.start, p.first_line, p.frame_start) for p in parts][:3] == [(0, 1, 0), (size + 91, 22, size),
                                                                          (2 * size + 91, 42, 2 * size)]
    assert [p.frame_offset for p in parts[:2]] == [0, len(frames[0])] and len(parts) == 10
    assert list(read_lines(whole, 200)) == [line for part in parts for line in read_lines(part, 200)]
    one_frame = compressor.compress(line * 400)
    (tmp_path / "a.txt.zst").write_bytes(one_frame)
    files, _ = list_input_files([str(tmp_path)], ReadConfig())
    ranges, notes = split_files(files, 100)
    assert ranges == files and notes == [
        "a.txt.zst: 36,400 bytes in 1 zstd frame with no start past 100 bytes to cut at, read whole by one worker "
        "(write it in frames, e.g. with pzstd, or as several files)"]


def test_a_multi_frame_zst_file_read_in_ranges_gives_the_same_bytes(raw_corpus, tmp_path):
    """The fixture corpus with its English txt file as a .zst of 1 KB frames (cut anywhere in a
    line): cut into ranges (read.split_bytes 1 KB) or read whole, the build writes the same bytes."""
    import shutil

    from corpus.pipeline.build import build_corpus
    from schemas import BuildConfig

    corpus = tmp_path / "in"
    shutil.copytree(raw_corpus, corpus)
    text = (corpus / "txt" / "en.txt").read_bytes()
    (corpus / "txt" / "en.txt").unlink()
    (corpus / "txt" / "en.txt.zst").write_bytes(_frames([text], list(range(1000, len(text), 1000))))
    outputs = []
    for name, split_bytes in (("whole", 1 << 30), ("ranges", 1024)):
        config = BuildConfig(input=[str(corpus)], output=str(tmp_path / name / "ds"), dataset_name="tiny",
                             task_name="test", split={"min_length": 50, "max_length": 1500},
                             read={"split_bytes": split_bytes})
        logs: list[str] = []
        outputs.append(build_corpus(config, ["--direct_num_workers=1"], log=logs.append))
        assert ("input files (big files cut into" in " ".join(logs)) == (name == "ranges"), logs
    assert len(list((tmp_path / "ranges" / "ds.work" / "prepared").glob("txt%2Fen.txt.zst%23*.done.json"))) > 3
    for folder in ("data", "arrow", "rejects"):  # same records, rejects and source_line provenance
        whole, ranged = ([(str(p.relative_to(o.output / folder)), p.read_bytes()) for p in sorted((o.output / folder).rglob("*"))
                          if p.is_file() and not p.name.startswith(".")] for o in outputs)
        assert whole == ranged and whole
