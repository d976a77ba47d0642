"""Big input files cut into line-aligned byte ranges, so that different workers read them.

An uncompressed file over `read.split_bytes` is cut right after the first line end (`\\n`) at
or past each multiple of `split_bytes`; each range is an `InputFile` with its bytes
`[start, end)` and the number of its first line, so `source_line` is the line's number in the
whole file whatever range read it. The driver finds the cuts in one pass that counts line ends
(`\\r\\n`, `\\n`, lone `\\r`, as `read.read_lines` splits lines) with numpy, without decoding
anything.

Compressed files stay whole: a gzip stream cannot be entered in the middle, and zstd frames
could be, but only after decompressing the file once to find where its lines start, which is
the work the ranges are meant to spread (write big corpora as several `.zst` files instead).
"""

from __future__ import annotations

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from corpus.pipeline.read import CHUNK_BYTES, InputFile

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


def split_into_ranges(file: InputFile, split_bytes: int) -> list[InputFile]:
    """`file` as line-aligned ranges of about `split_bytes`, or `[file]` when it is compressed or small."""
    if file.compression is not None or file.size <= split_bytes:
        return [file]
    cuts = line_cuts(file.url, file.size, split_bytes)
    if not cuts:
        return [file]
    starts = [(0, 1), *cuts]
    ends = [offset for offset, _ in cuts] + [file.size]
    parts = len(starts)
    return [InputFile(file.source_path, file.url, file.format, file.compression, file.size, file.mtime,
                      part=i, parts=parts, start=start, end=end, first_line=first_line)
            for i, ((start, first_line), end) in enumerate(zip(starts, ends))]
