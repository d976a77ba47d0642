"""Where `verify_dataset` reads blocks from: a local data file (`os.pread` on a regular file)
or an object on a remote store (`s3://`, `gs://`, `hdfs://`) read through Beam's filesystems
in ranges, one block at a time. Beam is imported only for a remote path; its filesystem
options (endpoint, credentials) are set by the caller."""

from __future__ import annotations

import os
from pathlib import Path

from schemas import FileInfo

from corpus.dataset.meta import META_FILE, open_regular_fd, parse_meta, read_meta


def object_size(url: str) -> int:
    """Size in bytes of the object at `url`. Raises FileNotFoundError when there is none."""
    from apache_beam.io.filesystems import FileSystems

    try:
        matched = FileSystems.match([url])[0].metadata_list
    except Exception:  # noqa: BLE001 - BeamIOError for a missing object or prefix
        matched = []
    for meta in matched:
        if meta.path == url:
            return meta.size_in_bytes
    raise FileNotFoundError(f"{url}: no such object")


def open_object(url: str):
    """A seekable binary stream of the object at `url`, read in ranges (never downloaded whole)."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.open(url, compression_type=CompressionTypes.UNCOMPRESSED)


class LocalBlocks:
    """Blocks of a local data file: one `os.pread` per block on a regular file's fd."""

    def __init__(self, path: Path):
        self.fd = open_regular_fd(path)  # FileNotFoundError, DatasetCorrupt (a FIFO, a device)
        self.size = os.fstat(self.fd).st_size

    def read_at(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def close(self) -> None:
        os.close(self.fd)


class RemoteBlocks:
    """Blocks of a data file on an object store: seek + read on a Beam stream, i.e. ranged GETs
    (Beam's S3 stream holds at most its 16 MiB read buffer or one block, never the object)."""

    def __init__(self, url: str):
        self.size = object_size(url)  # FileNotFoundError
        self.stream = open_object(url)

    def read_at(self, offset: int, length: int) -> bytes:
        self.stream.seek(offset)
        parts = []
        while length > 0 and (part := self.stream.read(length)):
            parts.append(part)
            length -= len(part)
        return b"".join(parts)

    def close(self) -> None:
        self.stream.close()


def is_remote(path) -> bool:
    """True for a URL (`s3://`, `gs://`, `hdfs://`): a str with a scheme."""
    return isinstance(path, str) and "://" in path


def join(dataset_path: Path | str, name: str) -> Path | str:
    """`name` inside the dataset folder or under the dataset URL."""
    return f"{dataset_path.rstrip('/')}/{name}" if is_remote(dataset_path) else Path(dataset_path) / name


def open_blocks(path: Path | str) -> LocalBlocks | RemoteBlocks:
    """The block reader of one data file, local or remote. Raises FileNotFoundError."""
    return RemoteBlocks(path) if is_remote(path) else LocalBlocks(Path(path))


def read_meta_of(dataset_path: Path | str) -> list[FileInfo]:
    """`read_meta` for a local or a remote dataset (meta.bin is small: read whole)."""
    if not is_remote(dataset_path):
        return read_meta(dataset_path)
    url = join(dataset_path, META_FILE)
    object_size(url)  # FileNotFoundError without meta.bin, as read_meta
    with open_object(url) as stream:
        return parse_meta(stream.read().splitlines(keepends=True), url)
