"""`convert_dataset`: rewrite a dataset with another serializer (pickle <-> JSON), file by file.

Records keep their order and files keep their names, block sizes, masks and extra keys;
pickles are decoded through the restricted unpickler.
"""

from __future__ import annotations

import os
from pathlib import Path

from corpus.dataset.blockfile import iter_file_payloads
from corpus.dataset.maintenance import mask_dataset
from corpus.dataset.meta import DatasetCorrupt, read_meta
from corpus.dataset.progress import progress_bar as open_progress_bar
from corpus.dataset.serializer import get_serializer
from corpus.dataset.shuffle import common_extras
from corpus.dataset.writer import build_dataset


def convert_dataset(
    src: str | os.PathLike, dst: str | os.PathLike, serializer: str = "json", progress: bool = False
) -> list[str]:
    """Write every file of `src` into dataset `dst` with `serializer` (`json` or `pickle`).

    Returns the names written. Raises FileExistsError when `dst` already has one of the
    names, ValueError (naming file and record) for a record the target cannot hold (JSON
    has no bytes, sets or non-string keys), DatasetCorrupt for a broken source.
    """
    if serializer not in ("json", "pickle"):
        raise ValueError(f"convert writes json or pickle, not {serializer!r}")
    src, dst = Path(src), Path(dst)
    infos = read_meta(src)
    decoder = get_serializer("auto")
    encoder = get_serializer(serializer)
    written = []
    with open_progress_bar(f"convert to {serializer}", sum(info.nlines for info in infos), progress) as advance:
        for info in infos:
            extras = common_extras([info])
            with build_dataset(dst, info.file_name, info.block_size, serializer="raw", extra_meta=extras) as writer:
                for index, (_, payload) in enumerate(iter_file_payloads(src, info)):
                    try:
                        record = decoder.deserialize(payload)
                    except Exception as error:
                        raise DatasetCorrupt(
                            f"{src / info.file_name}: record {index} does not decode: {type(error).__name__}: {error}"
                        ) from None
                    try:
                        writer.write(encoder.serialize(record))
                    except (TypeError, ValueError) as error:
                        raise ValueError(f"{src / info.file_name}: record {index}: cannot write as {serializer}: {error}") from None
                    advance(1)
            if info.mask:
                mask_dataset(dst, info.file_name)
            written.append(info.file_name)
    return written
