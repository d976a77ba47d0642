"""Stage 1, read: find the input files of a build and turn their lines into `Record`s.

`.txt` files hold one sample per line, with CPM-Bee's line rules (`<n>` and the escaped
`\\r\\n`, `\\r`, `\\n` become newlines; whitespace-only lines between paragraphs collapse to
one blank line). `.json`/`.jsonl` files hold one JSON object per line. Either may be
`.gz`- or `.zst`-compressed. Files are opened through `apache_beam.io.filesystems`, so a
worker needs no shared local disk. Unreadable lines and files become rejects, never errors.
"""

from __future__ import annotations

import json
import os
import re
import stat
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import zstandard
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from corpus.pipeline.stage import STAGE_ERROR, Stage
from schemas import Record, Reject
from schemas.build_config import ReadConfig

STAGE = "read"
CHUNK_BYTES = 1 << 20
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
BOM = b"\xef\xbb\xbf"


class TruncatedInput(Exception):
    """A compressed stream that ends before its end-of-stream marker."""


@dataclass(frozen=True, order=True)
class InputFile:
    """One file of a build, or one byte range of it: its `source_path` (relative to its input
    root), where it lives and, for a range (`parts` > 1), the bytes `[start, end)` it covers and
    the number of its first line in the whole file (ranges.py cuts them at line ends). For a
    `.zst` range, `start` and `end` count decompressed bytes, and reading starts at the zstd
    frame at byte `frame_offset` of the file, whose first byte is decompressed byte `frame_start`.
    """

    source_path: str
    url: str
    format: str  # "txt" or "json"
    compression: str | None  # None, "gzip" or "zstd"
    size: int
    mtime: float
    part: int = 0
    parts: int = 1
    start: int = 0
    end: int | None = None  # None: to the end of the file
    first_line: int = 1
    frame_offset: int = 0
    frame_start: int = 0
    digest: str = ""  # content digest of the whole file (input_digest.py), filled in by the build

    @property
    def key(self) -> str:
        """The name of this file's (or range's) checkpoint: `source_path`, plus `#part/parts` for a range."""
        return self.source_path if self.parts == 1 else f"{self.source_path}#{self.part}/{self.parts}"

    @property
    def fingerprint(self) -> str:
        """What a checkpoint of this file is valid for: same name, size, modification time and content (and byte range)."""
        whole = f"{self.source_path}|{self.size}|{self.mtime:.6f}|{self.digest}"
        return whole if self.parts == 1 else f"{whole}|{self.start}-{self.end}|{self.first_line}"


@dataclass(frozen=True, order=True)
class SkippedPath:
    """A file or folder under an input root that the build does not read, and why."""

    path: str  # relative to its input root (prefixed with the root's name when there are several)
    reason: str  # one of SKIP_REASONS


SKIP_REASONS = {
    "unknown_type": "not a txt/json suffix of `read.txt_suffixes` / `read.json_suffixes`",
    "hidden": "name starts with a dot (`read.skip_hidden: false` reads it)",
    "symlink_not_followed": "a symlink (`read.follow_symlinks: true` reads through it)",
    "symlink_loop": "a symlink to a folder already being read",
    "broken_symlink": "a symlink to nothing",
    "unreadable": "no permission to read it, or it vanished",
    "not_a_file": "a FIFO, socket or device",
    "build_output": "this build's own output, staging or work folder, or its manifest",
}


def _relative(url: str, root: str) -> str:
    root = root.rstrip("/") + "/"
    if not url.startswith(root):
        raise ValueError(f"{url} is not under input root {root}")
    return url[len(root):]


def input_kind(name: str, config: ReadConfig) -> tuple[str, str | None] | None:
    """(`"txt"` or `"json"`, compression or None) of a file name, or None when it is not read."""
    stem, compression = name, None
    for suffix, kind in COMPRESSIONS.items():
        if stem.endswith(suffix):
            stem, compression = stem[: -len(suffix)], kind
    if stem.endswith(tuple(config.txt_suffixes)):
        return "txt", compression
    if stem.endswith(tuple(config.json_suffixes)):
        return "json", compression
    return None


def _is_local(root: str) -> bool:
    return "://" not in root or root.startswith("file://")


def _walk_local(root: str, config: ReadConfig, excluded: set[str]) -> Iterator[tuple[str, int, float] | SkippedPath]:
    """`(relative path, size, mtime)` of each regular file under a local `root`, or a
    `SkippedPath` for each entry not read; follows symlinks (`config.follow_symlinks`) with loop
    detection on the (device, inode) of the folders being walked."""
    root = root.removeprefix("file://")

    def walk(folder: str, relative: str, ancestors: frozenset) -> Iterator:
        try:
            with os.scandir(folder) as entries:
                children = sorted(entries, key=lambda entry: entry.name)
        except OSError:
            yield SkippedPath(relative or ".", "unreadable")
            return
        for entry in children:
            path = f"{relative}/{entry.name}" if relative else entry.name
            if config.skip_hidden and entry.name.startswith("."):
                yield SkippedPath(path, "hidden")
                continue
            if entry.is_symlink() and not config.follow_symlinks:
                yield SkippedPath(path, "symlink_not_followed")
                continue
            try:
                info = entry.stat()  # follows a symlink
            except FileNotFoundError:
                yield SkippedPath(path, "broken_symlink" if entry.is_symlink() else "unreadable")
                continue
            except OSError:
                yield SkippedPath(path, "unreadable")
                continue
            if os.path.abspath(entry.path) in excluded or (
                    stat.S_ISDIR(info.st_mode) and os.path.realpath(entry.path) in excluded):
                yield SkippedPath(path, "build_output")
                continue
            if stat.S_ISDIR(info.st_mode):
                identity = (info.st_dev, info.st_ino)
                if identity in ancestors:
                    yield SkippedPath(path, "symlink_loop")
                    continue
                yield from walk(entry.path, path, ancestors | {identity})
            elif not stat.S_ISREG(info.st_mode):
                yield SkippedPath(path, "not_a_file")
            elif not os.access(entry.path, os.R_OK):
                yield SkippedPath(path, "unreadable")
            else:
                yield path, info.st_size, info.st_mtime

    top = os.stat(root)
    yield from walk(root, "", frozenset({(top.st_dev, top.st_ino)}))


def _walk_remote(root: str, config: ReadConfig, excluded: set[str]) -> Iterator[tuple[str, int, float] | SkippedPath]:
    """The same for a remote filesystem (gs://, s3://, hdfs://): what `FileSystems.match` lists."""
    for meta in FileSystems.match([root + "/**"])[0].metadata_list:
        relative = _relative(meta.path, root)
        if any(meta.path == path or meta.path.startswith(path + "/") for path in excluded):
            yield SkippedPath(relative, "build_output")
        elif config.skip_hidden and any(part.startswith(".") for part in relative.split("/")):
            yield SkippedPath(relative, "hidden")
        else:
            yield relative, meta.size_in_bytes, meta.last_updated_in_seconds


def list_input_files(roots: list[str], config: ReadConfig,
                     exclude: Sequence[str] = ()) -> tuple[list[InputFile], list[SkippedPath]]:
    """Every readable file under `roots` (recursively), sorted by `source_path`, and every file
    or folder under them that is not read, with the reason (`SkippedPath`).

    `exclude`: paths (the build's output, staging and work folders) never read, even when they
    sit inside an input root. With more than one root, `source_path` starts with the root's
    folder name, so paths stay unique. Raises FileNotFoundError when a root does not exist,
    ValueError on clashing names.
    """
    files: list[InputFile] = []
    skipped: list[SkippedPath] = []
    names = [root.rstrip("/").rsplit("/", 1)[-1] for root in roots]
    if len(roots) > 1 and len(set(names)) != len(names):
        raise ValueError(f"input roots must have distinct folder names, got {names}")
    for root, name in zip(roots, names):
        root = root.rstrip("/") or "/"
        local = _is_local(root)
        if local and not os.path.isdir(root.removeprefix("file://")):
            raise FileNotFoundError(f"input root {root} does not exist or is not a folder")
        if not local and not FileSystems.exists(root):
            raise FileNotFoundError(f"input root {root} does not exist")
        if local:
            excluded = {os.path.realpath(path) for path in exclude} | {os.path.abspath(path) for path in exclude}
            found = _walk_local(root, config, excluded)
        else:
            found = _walk_remote(root, config, {path.rstrip("/") for path in exclude})
        for item in found:
            prefix = f"{name}/" if len(roots) > 1 else ""
            if isinstance(item, SkippedPath):
                skipped.append(SkippedPath(prefix + item.path, item.reason))
                continue
            relative, size, mtime = item
            kind = input_kind(relative, config)
            if kind is None:
                skipped.append(SkippedPath(prefix + relative, "unknown_type"))
                continue
            fmt, compression = kind
            url = f"{root.removeprefix('file://') if local else root}/{relative}"
            files.append(InputFile(prefix + relative, url, fmt, compression, size, mtime))
    files.sort()
    return files, sorted(skipped)


def _framed_chunks(raw, new_decompressor, name: str, skip_zero_padding: bool = False) -> Iterator[bytes]:
    """Decompress a stream of frames (zstd frames, gzip members) as it comes, so the bytes before
    a cut are all yielded; raise TruncatedInput if the last frame is cut off. With
    `skip_zero_padding`, zero bytes after a frame are ignored, as gzip does."""
    decompressor = None
    while True:
        chunk = raw.read(CHUNK_BYTES)
        if not chunk:
            break
        while chunk:
            if decompressor is None:
                if skip_zero_padding and not chunk.strip(b"\0"):
                    break
                decompressor = new_decompressor()
            out = decompressor.decompress(chunk)
            if out:
                yield out
            if decompressor.eof:
                chunk, decompressor = decompressor.unused_data, None
            else:
                chunk = b""
    if decompressor is not None:
        raise TruncatedInput(f"{name} stream ends before its end-of-stream marker")


def _zstd_chunks(raw) -> Iterator[bytes]:
    return _framed_chunks(raw, lambda: zstandard.ZstdDecompressor().decompressobj(), "zstd")


def _gzip_chunks(raw) -> Iterator[bytes]:
    return _framed_chunks(raw, lambda: zlib.decompressobj(wbits=31), "gzip", skip_zero_padding=True)


def _sliced_chunks(chunks: Iterator[bytes], skip: int, limit: int | None) -> Iterator[bytes]:
    """`chunks` without their first `skip` bytes, at most `limit` bytes in all (None: to the end)."""
    for chunk in chunks:
        if skip:
            skip, chunk = max(0, skip - len(chunk)), chunk[skip:]
        if limit is not None:
            chunk, limit = chunk[:limit], limit - min(limit, len(chunk))
        if chunk:
            yield chunk
        if limit == 0:
            return


def _plain_chunks(stream, limit: int | None = None) -> Iterator[bytes]:
    """Chunks of `stream`, at most `limit` bytes in all (None: to the end)."""
    left = limit
    while left is None or left > 0:
        chunk = stream.read(CHUNK_BYTES if left is None else min(CHUNK_BYTES, left))
        if not chunk:
            return
        if left is not None:
            left -= len(chunk)
        yield chunk


def read_chunks(file: InputFile) -> Iterator[bytes]:
    """Decompressed bytes of `file` (of its byte range, for a range), chunk by chunk.
    Raises TruncatedInput, OSError, zstd/zlib errors."""
    with FileSystems.open(file.url, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        if file.compression == "zstd":
            if file.parts == 1:
                yield from _zstd_chunks(raw)
                return
            raw.seek(file.frame_offset)  # a range: its first frame, then from its first line on
            yield from _sliced_chunks(_zstd_chunks(raw), file.start - file.frame_start,
                                      None if file.end is None else file.end - file.start)
        elif file.compression == "gzip":
            yield from _gzip_chunks(raw)
        else:
            if file.start:
                raw.seek(file.start)
            yield from _plain_chunks(raw, None if file.end is None else file.end - file.start)


def _line_end(line: bytes) -> int:
    """Length of `line` without its line ending (`\r\n`, `\r` or `\n`)."""
    if line.endswith(b"\r\n"):
        return len(line) - 2
    return len(line) - 1 if line.endswith((b"\n", b"\r")) else len(line)


def read_lines(file: InputFile, max_line_bytes: int) -> Iterator[tuple[int, bytes, bool]]:
    """`(line_number, bytes, too_long)` per line, streaming: a line over `max_line_bytes` is
    never held whole; its first `max_line_bytes` bytes come back with `too_long=True`.

    Lines end at `\r\n`, `\n` or a lone `\r` (Python's universal newlines, as CPM-Bee's
    build_dataset.py reads files); a UTF-8 byte order mark at the start of a file is dropped;
    numbers count from `file.first_line`.
    """
    number = file.first_line - 1
    carry = b""  # the start of a line whose end has not come yet
    skipping = False  # inside a line already reported too long
    at_start = file.start == 0
    for chunk in read_chunks(file):
        if at_start and chunk:
            chunk, at_start = chunk.removeprefix(BOM), False
        lines = (carry + chunk if carry else chunk).splitlines(keepends=True)
        # the last piece is unfinished unless it ends with "\n" (one ending with "\r" may go on with "\n")
        carry = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        for line in lines:
            if skipping:
                skipping = False
                continue
            number += 1
            end = _line_end(line)
            yield number, line[: min(end, max_line_bytes)], end > max_line_bytes
        if _line_end(carry) > max_line_bytes:
            if not skipping:
                number += 1
                yield number, carry[:max_line_bytes], True
                skipping = True
            carry = b"\r" if carry.endswith(b"\r") else b""  # a "\r" may end the skipped line
    if carry and not skipping:
        number += 1
        end = _line_end(carry)
        yield number, carry[: min(end, max_line_bytes)], end > max_line_bytes


_ESCAPED_NEWLINES = ("<n>", "\\r\\n", "\\r", "\\n")
_BLANK_RUN = re.compile(r"\n\s+\n")


def txt_line_to_text(line: str) -> str:
    """CPM-Bee's txt rules: escaped newlines become newlines, blank runs one blank line."""
    text = line.strip()
    for escaped in _ESCAPED_NEWLINES:
        text = text.replace(escaped, "\n").strip()
    return _BLANK_RUN.sub("\n\n", text)


def classify_json(data: dict, text_fields: list[str]) -> tuple[str, str | None]:
    """What a JSON object is: `("sample", None)` with a top-level `<ans>` key (a CPM-Bee
    structured sample), else `("document", field)` with the first of `text_fields` it has (a
    text document, like a txt line), else `("other", None)`."""
    if "<ans>" in data:
        return "sample", None
    for field in text_fields:
        if field in data:
            return "document", field
    return "other", None


def json_text_view(value: object) -> str:
    """The string values of a json sample (keys excluded), depth first, joined by newlines."""
    parts: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            parts.append(node)
        elif isinstance(node, dict):
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(value)
    return "\n".join(parts)


class ReadFileLines(Stage):
    """`InputFile` -> one `Record` or `Reject` per line (plus one reject for a file cut short or
    empty): as many outputs as the file has units, the count its checkpoint keeps."""

    stage = STAGE

    def __init__(self, config: ReadConfig, reject_text_chars: int = 2000, keep_records_without_ans: bool = False):
        self.config = config
        self.reject_text_chars = reject_text_chars
        self.keep_records_without_ans = keep_records_without_ans  # BuildConfig.keeps_records_without_ans

    def _reject(self, file: InputFile, line: int, reason: str, detail: str, text: str = "") -> Reject:
        self.counters.dropped(reason)
        return Reject(
            source_path=file.source_path, source_line=line, stage=STAGE, reason=reason,
            detail=detail, text=text[: self.reject_text_chars],
        )

    def _parse(self, file: InputFile, number: int, raw: bytes, too_long: bool) -> Record | Reject:
        where = f"{file.source_path}:{number}"
        if too_long:
            return self._reject(file, number, "line_too_long", f"{where}: line longer than {self.config.max_line_bytes} bytes",
                                raw.decode("utf-8", errors="replace"))
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            return self._reject(file, number, "invalid_utf8", f"{where}: byte {error.start}: {error.reason}",
                                raw.decode("utf-8", errors="replace"))
        if file.format == "txt":
            text = txt_line_to_text(line)
            if not text:
                return self._reject(file, number, "empty_line", f"{where}: nothing but whitespace", line)
            return Record(source_path=file.source_path, source_line=number, kind="text", text=text, raw_chars=len(text))
        if not line.strip():
            return self._reject(file, number, "empty_line", f"{where}: nothing but whitespace", line)
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            return self._reject(file, number, "broken_json", f"{where}: column {error.colno}: {error.msg}", line)
        except (ValueError, RecursionError) as error:  # a number over Python's digit limit, nesting too deep
            return self._reject(file, number, "broken_json", f"{where}: {type(error).__name__}: {error}", line)
        if not isinstance(data, dict):
            return self._reject(file, number, "not_an_object", f"{where}: a JSON {type(data).__name__}, expected an object", line)
        return self._json_record(file, number, data, line)

    def _json_record(self, file: InputFile, number: int, data: dict, line: str) -> Record | Reject:
        """A JSON object as a text document (a text field, no `<ans>`), a structured sample
        (`<ans>`, or kept for the build's transforms), or a reject saying which settings would take it."""
        where = f"{file.source_path}:{number}"
        kind, field = classify_json(data, self.config.text_fields)
        if kind == "document":
            text = data[field]
            if not isinstance(text, str):
                return self._reject(file, number, "text_not_a_string",
                                    f"{where}: field {field!r} (the first of read.text_fields {self.config.text_fields} "
                                    f"present) is a JSON {type(text).__name__}, not a string", line)
            metadata = {key: value for key, value in data.items() if key != field}
            if "text" in metadata:
                return self._reject(file, number, "text_field_clash",
                                    f"{where}: text read from {field!r}, but the record also has a 'text' field, which "
                                    f"the document would be written as; put 'text' first in read.text_fields or rename it",
                                    line)
            return Record(source_path=file.source_path, source_line=number, kind="text", text=text, metadata=metadata,
                          raw_chars=len(text))
        if kind == "other" and not self.keep_records_without_ans:
            keys = ", ".join(list(data)[:8])
            return self._reject(file, number, "not_a_sample",
                                f"{where}: neither a text field (read.text_fields: {self.config.text_fields}) nor a "
                                f"top-level `<ans>` key (keys: {keys}); to keep it, add its text field to "
                                f"read.text_fields, or declare `transforms` that turn it into a sample "
                                f"(or set escape.require_ans: false)", line)
        text = json_text_view(data)
        return Record(source_path=file.source_path, source_line=number, kind="json", text=text, data=data, raw_chars=len(text))

    def process(self, file: InputFile) -> Iterator[Record | Reject]:
        units = 0
        number = 0
        lines = read_lines(file, self.config.max_line_bytes)
        while True:
            try:
                number, raw, too_long = next(lines)
            except StopIteration:
                break
            except (TruncatedInput, EOFError, OSError, zlib.error, zstandard.ZstdError) as error:
                # The lines before the damage are kept; the damage itself is one reject.
                units += 1
                self.counters.records_in.inc()
                yield self._reject(file, number + 1, "truncated_file",
                                   f"{file.source_path}: unreadable after line {number}: {type(error).__name__}: {error}")
                break
            units += 1
            self.counters.records_in.inc()
            try:
                item = self._parse(file, number, raw, too_long)
            except Exception as error:  # noqa: BLE001 - one bad line never fails a build
                item = self._reject(file, number, STAGE_ERROR, f"{file.source_path}:{number}: {type(error).__name__}: "
                                    f"{str(error)[:300]}", raw.decode("utf-8", errors="replace"))
            if isinstance(item, Record):
                self.counters.records_out.inc()
            yield item
        if units == 0 and file.parts == 1:  # a byte range may hold no line start (inside one long line)
            self.counters.records_in.inc()
            yield self._reject(file, 0, "empty_file", f"{file.source_path}: no lines")
