"""Big input files cut into line-aligned byte ranges, so that different workers read them.

An uncompressed file over `read.split_bytes` is cut right after the first line end (`\\n`) at
or past each multiple of `split_bytes`; each range is an `InputFile` with its bytes
`[start, end)` and the number of its first line, so `source_line` is the line's number in the
whole file whatever range read it. The driver finds the cuts in one pass that counts line ends
(`\\r\\n`, `\\n`, lone `\\r`, as `read.read_lines` splits lines) with numpy, without decoding
anything.

A `.zst` file made of several zstd frames (as `pzstd` writes, or `.zst` files concatenated)
is cut at frame starts: at the first line start at or after the first frame start at or past
each multiple of `split_bytes` decompressed bytes. A worker seeks to that frame, decompresses
from there and drops the bytes before the line start. Finding the cuts takes one decompressing
pass in the driver (zstd decompresses at hundreds of MB/s, the pipeline reads a few MB/s a
core). A `.zst` file of a single frame (what `zstd FILE` writes) cannot be entered anywhere but
its start, and a gzip stream neither: both are read whole by one worker, and the build says so
for such a file over `split_bytes` (`split_files`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import zstandard
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from corpus.pipeline.read import CHUNK_BYTES, InputFile

# A .zst file is scanned for frames when its compressed size could hold `split_bytes` of text
# at this compression ratio (text rarely compresses better).
ZSTD_MAX_RATIO = 16

SCAN_BYTES = 8 * CHUNK_BYTES


def _count_byte(data: bytes, byte: int, start: int, end: int) -> int:
    """How often `byte` occurs in `data[start:end]` (numpy: about 3x `bytes.count`)."""
    return int(np.count_nonzero(np.frombuffer(data, np.uint8, count=end - start, offset=start) == byte))


def _line_breaks(data: bytes, start: int = 0, end: int | None = None) -> int:
    """Line ends in `data[start:end]`: `\\r\\n` counts once, a lone `\\r` or `\\n` once."""
    end = len(data) if end is None else end
    breaks = _count_byte(data, 0x0A, start, end)
    if data.find(b"\r", start, end) < 0:  # memchr: the usual case costs next to nothing
        return breaks
    return breaks + _count_byte(data, 0x0D, start, end) - data.count(b"\r\n", start, end)


def line_cuts(url: str, size: int, split_bytes: int) -> list[tuple[int, int]]:
    """`(offset, line_number)` of each cut of the file at `url`: the first line start at or after
    each multiple of `split_bytes` that follows a `\\n` (never the file's end)."""
    cuts: list[tuple[int, int]] = []
    target = split_bytes  # the next cut is the first line start at or past this offset
    position = 0  # offset of `chunk` in the file
    breaks = 0  # line ends before `position`
    previous_cr = False  # the byte before `chunk` is "\r"
    with FileSystems.open(url, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        while target < size:
            chunk = stream.read(SCAN_BYTES)
            if not chunk:
                break
            straddling = previous_cr and chunk[:1] == b"\n"  # "\r" | "\n" across chunks is one line end
            low = 0
            while target < size:
                found = chunk.find(b"\n", max(low, target - 1 - position))
                if found < 0:
                    break
                cut = position + found + 1
                if cut >= size:
                    target = size
                    break
                breaks += _line_breaks(chunk, low, found + 1) - (straddling and low == 0)
                low = found + 1
                cuts.append((cut, breaks + 1))
                while target <= cut:
                    target += split_bytes
            breaks += _line_breaks(chunk, low) - (straddling and low == 0)
            previous_cr = chunk.endswith(b"\r")
            position += len(chunk)
    return cuts


def _zstd_frames(raw) -> Iterator[tuple[int | None, bytes]]:
    """The decompressed bytes of a zstd stream as `(frame_offset, chunk)`: `frame_offset` is the
    compressed offset of the frame the chunk starts (with a chunk, maybe empty, for every frame),
    None for the frame's later chunks."""
    consumed = 0  # compressed bytes read so far
    decompressor, pending = None, b""
    while True:
        if not pending:
            pending = raw.read(CHUNK_BYTES)
            if not pending:
                return
            consumed += len(pending)
        if decompressor is None:
            decompressor = zstandard.ZstdDecompressor().decompressobj()
            yield consumed - len(pending), b""
        yield None, decompressor.decompress(pending)
        if decompressor.eof:
            pending, decompressor = decompressor.unused_data, None
        else:
            pending = b""


def zstd_cuts(url: str, split_bytes: int) -> tuple[list[tuple[int, int, int, int]], int, int]:
    """`((cut, line_number, frame_offset, frame_start) per cut, frames, decompressed size)` of the
    `.zst` file at `url`: each cut is the first line start at or after the first frame start at or
    past a multiple of `split_bytes` (decompressed offsets); reading from it starts at the frame at
    compressed offset `frame_offset`, which starts at decompressed offset `frame_start`."""
    cuts: list[tuple[int, int, int, int]] = []
    target = split_bytes
    sought = None  # (frame_offset, frame_start) of a frame start at or past `target` without its cut yet
    position = breaks = frames = 0  # decompressed offset of `chunk`; line ends before it; frames seen
    last = b""  # the byte before `chunk`
    with FileSystems.open(url, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        for frame_offset, chunk in _zstd_frames(raw):
            if frame_offset is not None:
                frames += 1
                if sought is None and 0 < position and target <= position:
                    sought = (frame_offset, position)
            if not chunk:
                continue
            straddling = last == b"\r" and chunk[:1] == b"\n"  # "\r" | "\n": one line end
            low = 0
            if sought is not None:
                found = -1 if last == b"\n" and position == sought[1] else chunk.find(b"\n")
                if last == b"\n" and position == sought[1] or found >= 0:
                    low = found + 1
                    breaks += _line_breaks(chunk, 0, low) - straddling
                    cut = position + low
                    cuts.append((cut, breaks + 1, *sought))
                    sought = None
                    while target <= cut:
                        target += split_bytes
            breaks += _line_breaks(chunk, low) - (straddling and low == 0)
            last = chunk[-1:]
            position += len(chunk)
    if cuts and cuts[-1][0] >= position:  # a cut at the very end starts no range
        cuts.pop()
    return cuts, frames, position


def _size(count: int) -> str:
    return f"{count / (1 << 20):.1f} MB" if count >= 1 << 20 else f"{count:,} bytes"


def split_into_ranges(file: InputFile, split_bytes: int) -> list[InputFile]:
    """`file` as line-aligned ranges of about `split_bytes`, or `[file]` when it is small, gzip,
    or a `.zst` file without a frame start to cut at."""
    return split_file(file, split_bytes)[0]


def split_file(file: InputFile, split_bytes: int) -> tuple[list[InputFile], str | None]:
    """`split_into_ranges(file)` and, when a file over `split_bytes` must be read whole, why."""
    if file.compression == "gzip":
        return [file], (f"{file.source_path}: gzip, read whole by one worker (a gzip stream cannot be entered "
                        "in the middle; several files or a multi-frame .zst can be shared)"
                        if file.size > split_bytes else None)
    if file.compression == "zstd":
        if file.size * ZSTD_MAX_RATIO <= split_bytes:
            return [file], None
        zcuts, frames, size = zstd_cuts(file.url, split_bytes)
        if not zcuts:
            return [file], (f"{file.source_path}: {_size(size)} in {frames} zstd frame{'s' if frames != 1 else ''} "
                            f"with no start past {_size(split_bytes)} to cut at, read whole by one worker (write it "
                            "in frames, e.g. with pzstd, or as several files)" if size > split_bytes else None)
        starts = [(0, 1, 0, 0), *zcuts]
        ends: list[int | None] = [cut for cut, *_ in zcuts] + [None]
        return [InputFile(file.source_path, file.url, file.format, file.compression, file.size, file.mtime,
                          part=i, parts=len(starts), start=start, end=end, first_line=first_line,
                          frame_offset=frame_offset, frame_start=frame_start)
                for i, ((start, first_line, frame_offset, frame_start), end) in enumerate(zip(starts, ends))], None
    if file.size <= split_bytes:
        return [file], None
    cuts = line_cuts(file.url, file.size, split_bytes)
    if not cuts:
        return [file], None
    starts = [(0, 1), *cuts]
    ends = [offset for offset, _ in cuts] + [file.size]
    parts = len(starts)
    return [InputFile(file.source_path, file.url, file.format, file.compression, file.size, file.mtime,
                      part=i, parts=parts, start=start, end=end, first_line=first_line)
            for i, ((start, first_line), end) in enumerate(zip(starts, ends))], None


def split_files(files: list[InputFile], split_bytes: int) -> tuple[list[InputFile], list[str]]:
    """Every file's ranges, in order, and a line for each file over `split_bytes` read whole."""
    ranges: list[InputFile] = []
    notes: list[str] = []
    for file in files:
        parts, note = split_file(file, split_bytes)
        ranges += parts
        if note:
            notes.append(note)
    return ranges, notes
