"""Editing a dataset's index and files: `mask_dataset`, `compact_dataset`, `merge_dataset`.

CPM-Bee's semantics: masking hides a file from readers, compacting drops files that were
deleted and renumbers the blocks, merging copies another dataset's files in. Each holds the
meta lock for its read-modify-write of `meta.bin` and replaces it atomically; extra keys
of every line are kept.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from schemas import FileInfo

from corpus.atomic_file import create_temp_file
from corpus.dataset.lock import meta_lock
from corpus.dataset.meta import meta_path, read_meta, write_meta


def _require_dataset(path: Path) -> None:
    if not meta_path(path).is_file():
        raise FileNotFoundError(f"{path}: not a dataset (no {meta_path(path).name})")


def renumber(infos: list[FileInfo], start: int = 0) -> list[FileInfo]:
    """The same files with contiguous block ranges from `start`, in order."""
    out = []
    for info in infos:
        out.append(info.model_copy(update={"block_begin": start, "block_end": start + info.nblocks}))
        start += info.nblocks
    return out


def mask_dataset(path: str | os.PathLike, dbname: str, mask: bool = True) -> None:
    """Mask (or with `mask=False` unmask) the data file `dbname`: readers skip masked files.

    Raises FileNotFoundError without meta.bin, KeyError when no file has that name.
    """
    path = Path(path)
    _require_dataset(path)
    with meta_lock(path):
        infos = read_meta(path)
        names = [info.file_name for info in infos]
        if dbname not in names:
            raise KeyError(f"{path}: no data file named {dbname!r} (files: {', '.join(names) or 'none'})")
        write_meta(path, [info.model_copy(update={"mask": mask}) if info.file_name == dbname else info for info in infos])


def compact_dataset(path: str | os.PathLike) -> list[str]:
    """Drop meta.bin lines whose data file was deleted, and renumber the blocks of the rest.

    Unlike CPM-Bee's (which looks for the files in the working directory) this looks in the
    dataset folder. Changes block ids, so reader states taken before no longer apply.
    Returns the names dropped. Raises FileNotFoundError without meta.bin.
    """
    path = Path(path)
    _require_dataset(path)
    with meta_lock(path):
        infos = read_meta(path)
        kept = [info for info in infos if (path / info.file_name).is_file()]
        write_meta(path, renumber(kept))
    kept_names = {info.file_name for info in kept}
    return [info.file_name for info in infos if info.file_name not in kept_names]


def _free_name(directory: Path, name: str, taken: set[str]) -> str:
    """`name`, or `name_0`, `name_1`, ... (CPM-Bee's renaming) when taken or present."""
    candidate, index = name, 0
    while candidate in taken or (directory / candidate).exists():
        candidate = f"{name}_{index}"
        index += 1
    return candidate


def merge_dataset(dst: str | os.PathLike, src: str | os.PathLike) -> list[str]:
    """Copy every data file of `src` into `dst` and append them to `dst`'s meta.bin.

    A name already used in `dst` gets a `_0`, `_1`, ... suffix, as CPM-Bee does. Files are
    copied under a temporary name and renamed, and meta.bin is replaced only at the end, so
    an interrupted merge leaves `dst` as it was (plus stray `.tmp` files at worst).
    Returns the new names in `dst`. Raises FileNotFoundError when either is not a dataset.
    """
    dst, src = Path(dst), Path(src)
    _require_dataset(src)
    _require_dataset(dst)
    src_infos = read_meta(src)
    with meta_lock(dst):
        dst_infos = read_meta(dst)  # contiguous from 0, as read_meta requires
        taken = {info.file_name for info in dst_infos}
        added: list[FileInfo] = []
        copied: list[Path] = []
        try:
            for info in src_infos:
                name = _free_name(dst, info.file_name, taken)
                taken.add(name)
                fd, tmp = create_temp_file(dst, prefix=f".{name}.", suffix=".tmp")
                os.close(fd)
                try:
                    shutil.copyfile(src / info.file_name, tmp)
                    os.replace(tmp, dst / name)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                copied.append(dst / name)
                added.append(info.model_copy(update={"file_name": name}))
            write_meta(dst, dst_infos + renumber(added, dst_infos[-1].block_end if dst_infos else 0))
        except BaseException:
            for file in copied:
                file.unlink(missing_ok=True)
            raise
    return [info.file_name for info in added]
