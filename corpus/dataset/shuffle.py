"""`shuffle_dataset`: a seeded, bucketed shuffle of a whole dataset into one new data file.

CPM-Bee's algorithm, with the RNG seeded: step 1 deals every record (read in shuffled
block order) into `ceil(nbytes / bucket_size)` temporary bucket files at random; step 2
loads one bucket at a time, shuffles it in memory and writes it out. Memory is bounded by
one bucket. Records are copied as payload bytes, never decoded.
"""

from __future__ import annotations

import os
import random
import shutil
import string
import struct
import tempfile
from pathlib import Path
from typing import Any

from schemas import DEFAULT_BLOCK_SIZE, FileInfo

from corpus.dataset.meta import read_meta
from corpus.dataset.progress import progress_bar as open_progress_bar
from corpus.dataset.reader import SimpleDataset
from corpus.dataset.writer import build_dataset

DEFAULT_SHUFFLE_BUCKET_SIZE = 1 << 30  # 1 GiB of records in memory at a time
_OWN_KEYS = {"format_version", "serializer", "checksum"}  # the writer records these itself
_LENGTH = struct.Struct("<I")


def common_extras(infos: list[FileInfo]) -> dict[str, Any]:
    """Extra meta.bin keys every file agrees on (e.g. `escaped`), to carry into derived files."""
    if not infos:
        return {}
    common = {key: value for key, value in infos[0].extra_keys.items() if key not in _OWN_KEYS}
    for info in infos[1:]:
        extra = info.extra_keys
        common = {key: value for key, value in common.items() if key in extra and extra[key] == value}
    return common


def shuffle_dataset(
    path_src: str | os.PathLike,
    path_tgt: str | os.PathLike,
    block_size: int = DEFAULT_BLOCK_SIZE,
    bucket_size: int = DEFAULT_SHUFFLE_BUCKET_SIZE,
    progress_bar: bool = False,
    output_name: str | None = None,
    seed: int = 0,
) -> str:
    """Shuffle the unmasked records of `path_src` into a new data file of dataset `path_tgt`.

    Takes: `block_size` of the output, `bucket_size` (bytes of records shuffled in memory at
    once), `output_name` (default: 8 characters drawn from the seed + `.shuffle`, as
    CPM-Bee names it), `seed`; `progress_bar` shows rich progress bars.
    Returns the output file name. Raises FileExistsError when the name is taken,
    DatasetCorrupt for a broken source.
    """
    path_tgt = Path(path_tgt)
    rng = random.Random(f"shuffle:{seed}")
    if output_name is None:
        output_name = "".join(rng.choices(string.ascii_uppercase + string.digits, k=8)) + ".shuffle"
    source = SimpleDataset(path_src, serializer="raw", shuffle=True, seed=seed)
    num_buckets = max(1, -(-source.nbytes // bucket_size))
    infos = read_meta(path_src)
    extras = common_extras(infos)
    total = sum(info.nlines for info in infos if not info.mask)
    path_tgt.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".shuffle.", dir=path_tgt))
    try:
        buckets = [workdir / f"bucket-{index:05d}" for index in range(num_buckets)]
        files = [open(bucket, "wb") for bucket in buckets]
        try:
            with open_progress_bar("shuffle 1/2: deal into buckets", total, progress_bar) as advance:
                for payload in source:
                    files[int(rng.random() * num_buckets)].write(_LENGTH.pack(len(payload)) + payload)
                    advance(1)
        finally:
            for file in files:
                file.close()
        source.close()
        with (
            build_dataset(path_tgt, output_name, block_size=block_size, serializer="raw", extra_meta=extras) as writer,
            open_progress_bar("shuffle 2/2: shuffle buckets", total, progress_bar) as advance,
        ):
            for bucket in buckets:
                records = _read_bucket(bucket)
                rng.shuffle(records)
                for payload in records:
                    writer.write(payload)
                advance(len(records))
                bucket.unlink()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return output_name


def _read_bucket(bucket: Path) -> list[bytes]:
    data = bucket.read_bytes()
    records, offset = [], 0
    while offset < len(data):
        (length,) = _LENGTH.unpack_from(data, offset)
        records.append(data[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return records
