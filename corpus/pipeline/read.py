"""Stage 1, read: find the input files of a build and turn their lines into `Record`s.

`.txt` files hold one sample per line, with CPM-Bee's line rules (`<n>` and the escaped
`\\r\\n`, `\\r`, `\\n` become newlines; whitespace-only lines between paragraphs collapse to
one blank line). `.json`/`.jsonl` files hold one JSON object per line. Either may be
`.gz`- or `.zst`-compressed. Files are opened through `apache_beam.io.filesystems`, so a
worker needs no shared local disk. Unreadable lines and files become rejects, never errors.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
import zstandard
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from corpus.pipeline.stage import KEPT, REJECTED, STAGE_ERROR, StageCounters
from schemas import Record, Reject
from schemas.build_config import ReadConfig

STAGE = "read"
FILES = "files"  # side output: (source_path, units) — every record or reject the file produced
CHUNK_BYTES = 1 << 20
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}


class TruncatedInput(Exception):
    """A compressed stream that ends before its end-of-stream marker."""


@dataclass(frozen=True, order=True)
class InputFile:
    """One file of a build: its `source_path` (relative to its input root) and where it lives."""

    source_path: str
    url: str
    format: str  # "txt" or "json"
    compression: str | None  # None, "gzip" or "zstd"
    size: int
    mtime: float
    digest: str = ""  # content digest (input_digest.py), filled in by the build

    @property
    def fingerprint(self) -> str:
        """What a checkpoint of this file is valid for: same name, size, modification time and content."""
        return f"{self.source_path}|{self.size}|{self.mtime:.6f}|{self.digest}"


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


def list_input_files(roots: list[str], config: ReadConfig) -> tuple[list[InputFile], list[str]]:
    """Every readable file under `roots` (recursively), sorted by `source_path`, and the files skipped.

    With more than one root, `source_path` starts with the root's folder name, so paths stay
    unique. Raises FileNotFoundError when a root matches nothing, ValueError on clashing names.
    """
    files: list[InputFile] = []
    skipped: list[str] = []
    names = [root.rstrip("/").rsplit("/", 1)[-1] for root in roots]
    if len(roots) > 1 and len(set(names)) != len(names):
        raise ValueError(f"input roots must have distinct folder names, got {names}")
    for root, name in zip(roots, names):
        root = root.rstrip("/")
        matches = FileSystems.match([root + "/**"])[0].metadata_list
        if not matches and not FileSystems.exists(root):
            raise FileNotFoundError(f"input root {root} does not exist")
        for meta in matches:
            relative = _relative(meta.path, root)
            if config.skip_hidden and any(part.startswith(".") for part in relative.split("/")):
                continue
            source_path = f"{name}/{relative}" if len(roots) > 1 else relative
            kind = input_kind(relative, config)
            if kind is None:
                skipped.append(source_path)
                continue
            fmt, compression = kind
            files.append(InputFile(source_path, meta.path, fmt, compression, meta.size_in_bytes, meta.last_updated_in_seconds))
    files.sort()
    return files, sorted(skipped)


def _zstd_chunks(raw) -> Iterator[bytes]:
    """Decompress a (multi-frame) zstd stream; raise TruncatedInput if the last frame is cut off."""
    decompressor = None
    while True:
        chunk = raw.read(CHUNK_BYTES)
        if not chunk:
            break
        while chunk:
            if decompressor is None:
                decompressor = zstandard.ZstdDecompressor().decompressobj()
            out = decompressor.decompress(chunk)
            if out:
                yield out
            if decompressor.eof:
                chunk, decompressor = decompressor.unused_data, None
            else:
                chunk = b""
    if decompressor is not None:
        raise TruncatedInput("zstd stream ends before its end-of-frame marker")


def _plain_chunks(stream) -> Iterator[bytes]:
    while True:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            return
        yield chunk


def read_chunks(file: InputFile) -> Iterator[bytes]:
    """Decompressed bytes of `file`, chunk by chunk. Raises TruncatedInput, OSError, zstd/gzip errors."""
    with FileSystems.open(file.url, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
        if file.compression == "zstd":
            yield from _zstd_chunks(raw)
        elif file.compression == "gzip":
            try:
                yield from _plain_chunks(gzip.GzipFile(fileobj=raw, mode="rb"))
            except EOFError as error:
                raise TruncatedInput(f"gzip stream: {error}") from None
        else:
            yield from _plain_chunks(raw)


def read_lines(file: InputFile, max_line_bytes: int) -> Iterator[tuple[int, bytes, bool]]:
    """`(line_number, bytes, too_long)` per line, streaming: a line over `max_line_bytes` is
    never held whole; its first `max_line_bytes` bytes come back with `too_long=True`.
    """
    buffer = bytearray()
    overflow = False  # inside a line already reported too long
    line_number = 0
    for chunk in read_chunks(file):
        buffer += chunk
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > max_line_bytes:
                    if not overflow:
                        line_number += 1
                        yield line_number, bytes(buffer[:max_line_bytes]), True
                        overflow = True
                    del buffer[:]
                break
            if overflow:
                overflow = False
            else:
                line_number += 1
                line = bytes(buffer[:end])
                yield line_number, line[:max_line_bytes], len(line) > max_line_bytes
            del buffer[: end + 1]
    if buffer and not overflow:
        line_number += 1
        yield line_number, bytes(buffer[:max_line_bytes]), len(buffer) > max_line_bytes


_ESCAPED_NEWLINES = ("<n>", "\\r\\n", "\\r", "\\n")
_BLANK_RUN = re.compile(r"\n\s+\n")


def txt_line_to_text(line: str) -> str:
    """CPM-Bee's txt rules: escaped newlines become newlines, blank runs one blank line."""
    text = line.strip()
    for escaped in _ESCAPED_NEWLINES:
        text = text.replace(escaped, "\n").strip()
    return _BLANK_RUN.sub("\n\n", text)


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


class ReadFileLines(beam.DoFn):
    """`InputFile` -> `Record` per line; rejects to `rejected`; `(source_path, units)` to `files`."""

    def __init__(self, config: ReadConfig, reject_text_chars: int = 2000):
        self.config = config
        self.reject_text_chars = reject_text_chars

    def setup(self) -> None:
        self.counters = StageCounters(STAGE)

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
        text = json_text_view(data)
        return Record(source_path=file.source_path, source_line=number, kind="json", text=text, data=data, raw_chars=len(text))

    def process(self, file: InputFile):
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
                yield beam.pvalue.TaggedOutput(REJECTED, self._reject(
                    file, number + 1, "truncated_file",
                    f"{file.source_path}: unreadable after line {number}: {type(error).__name__}: {error}"))
                break
            units += 1
            self.counters.records_in.inc()
            try:
                item = self._parse(file, number, raw, too_long)
            except Exception as error:  # noqa: BLE001 - one bad line never fails a build
                item = self._reject(file, number, STAGE_ERROR, f"{file.source_path}:{number}: {type(error).__name__}: "
                                    f"{str(error)[:300]}", raw.decode("utf-8", errors="replace"))
            if isinstance(item, Reject):
                yield beam.pvalue.TaggedOutput(REJECTED, item)
            else:
                self.counters.records_out.inc()
                yield item
        if units == 0:
            units += 1
            self.counters.records_in.inc()
            yield beam.pvalue.TaggedOutput(REJECTED, self._reject(file, 0, "empty_file", f"{file.source_path}: no lines"))
        yield beam.pvalue.TaggedOutput(FILES, (file.source_path, units))


class ReadInputFiles(beam.PTransform):
    """PCollection[InputFile] -> outputs `kept` (Record), `rejected` (Reject), `files` ((path, units))."""

    def __init__(self, config: ReadConfig, reject_text_chars: int = 2000):
        super().__init__()
        self.config = config
        self.reject_text_chars = reject_text_chars

    def expand(self, files):
        return (
            files
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadLines" >> beam.ParDo(ReadFileLines(self.config, self.reject_text_chars)).with_outputs(
                REJECTED, FILES, main=KEPT)
        )
