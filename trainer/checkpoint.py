"""Checkpoint folders that are either complete or ignored, with a `latest` pointer.

Layout under the checkpoint dir:

    latest                  text: the tag of the newest complete checkpoint
    step-00000300/          DeepSpeed's files (model, ZeRO partitions, optimizer, LR schedule)
        trainer_state_rank0.pt   per rank: step, data-loader state, RNG states, loop state
        trainer_state_rank1.pt
        COMPLETE            written last, before the folder gets its final name
    .tmp-step-00000600/     a save in progress (or one killed mid-way): never loaded

A save writes everything into `.tmp-<tag>/`; once every rank has finished, rank 0 writes
`COMPLETE`, renames the folder to `<tag>` and replaces `latest` (temp file + os.replace).
A process killed at any point leaves `latest` naming the previous complete checkpoint.
The folder must be on a file system every rank sees (one rename publishes it for all).
"""

from __future__ import annotations

import io
import os
import pickle
import random
import re
import shutil
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch._utils import _rebuild_tensor_v2

from corpus.atomic_file import write_bytes_atomically
from trainer.safe_load import UnsafeCheckpoint, load_checkpoint_file

LATEST_FILE = "latest"
COMPLETE_FILE = "COMPLETE"
TMP_PREFIX = ".tmp-"
TAG_PATTERN = re.compile(r"^step-(\d{8,})$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from; the message names the folder and the problem."""


def step_tag(step: int) -> str:
    """`step-00000300`: zero-padded so that names sort by step."""
    return f"step-{step:08d}"


def tag_step(tag: str) -> int:
    """The step in a tag made by `step_tag`. Raises ValueError for other names."""
    match = TAG_PATTERN.match(tag)
    if match is None:
        raise ValueError(f"not a checkpoint tag: {tag!r} (expected step-NNNNNNNN)")
    return int(match.group(1))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointDir:
    """The checkpoint folder of a run: which tags are complete, publishing and pruning saves."""

    def __init__(self, root: str | os.PathLike, keep_last: int = 3) -> None:
        self.root = Path(root)
        self.keep_last = keep_last

    def tmp_name(self, tag: str) -> str:
        """Folder name (relative to root) a save of `tag` is written into."""
        return TMP_PREFIX + tag

    def prepare(self, tag: str) -> Path:
        """Rank 0, before a save: create root, remove a leftover temp folder of this tag. Returns it."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / self.tmp_name(tag)
        if tmp.exists():
            shutil.rmtree(tmp)
        return tmp

    def publish(self, tag: str) -> Path:
        """Rank 0, after every rank finished writing `.tmp-<tag>/`: mark it complete, rename it
        to `<tag>`, point `latest` at it and prune old checkpoints. Returns the final folder."""
        tmp = self.root / self.tmp_name(tag)
        final = self.root / tag
        write_bytes_atomically(tmp / COMPLETE_FILE, tag.encode())
        if final.exists():  # a stale save of the same step (latest was moved back by hand)
            old = self.root / (TMP_PREFIX + "old-" + tag)
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
            shutil.rmtree(old)
        os.rename(tmp, final)
        _fsync_dir(self.root)
        write_bytes_atomically(self.root / LATEST_FILE, (tag + "\n").encode())
        self.prune()
        return final

    def complete_tags(self) -> list[str]:
        """Tags of complete checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        tags = [
            p.name for p in self.root.iterdir()
            if p.is_dir() and TAG_PATTERN.match(p.name) and (p / COMPLETE_FILE).is_file()
        ]  # fmt: skip
        return sorted(tags, key=tag_step)

    def latest(self) -> str | None:
        """The tag `latest` names, or None when there is no checkpoint yet.

        Raises CheckpointError when `latest` holds anything but a tag, or names a folder that is
        missing or incomplete.
        """
        pointer = self.root / LATEST_FILE
        if not pointer.is_file():
            return None
        tag = pointer.read_bytes().decode("utf-8", errors="replace").strip()
        if not TAG_PATTERN.match(tag):  # never a path: `latest` may not lead outside the folder
            raise CheckpointError(
                f"{pointer} holds {tag[:80]!r}, not a checkpoint tag (step-NNNNNNNN); "
                f"complete checkpoints here: {self.complete_tags() or 'none'}"
            )
        folder = self.root / tag
        if not (folder / COMPLETE_FILE).is_file():
            raise CheckpointError(
                f"{pointer} names {tag!r} but {folder} is missing or has no {COMPLETE_FILE} marker; "
                f"complete checkpoints here: {self.complete_tags() or 'none'}"
            )
        return tag

    def prune(self) -> None:
        """Delete complete checkpoints beyond the newest `keep_last` (never the one `latest` names),
        and temp folders of saves that never finished."""
        latest = self.latest()
        tags = self.complete_tags()
        for tag in tags[: max(len(tags) - self.keep_last, 0)]:
            if tag != latest:
                shutil.rmtree(self.root / tag, ignore_errors=True)
        for path in self.root.iterdir():
            if path.name.startswith(TMP_PREFIX) and path.is_dir() and latest is not None:
                # older than latest: a save that died; newer temp folders may be in progress
                name = path.name.removeprefix(TMP_PREFIX)
                if TAG_PATTERN.match(name) and tag_step(name) <= tag_step(latest):
                    shutil.rmtree(path, ignore_errors=True)


# ---- per-rank trainer state ------------------------------------------------------------


def trainer_state_file(folder: Path, rank: int) -> Path:
    return folder / f"trainer_state_rank{rank}.pt"


def rng_state() -> dict[str, Any]:
    """The RNG states a resumed run must continue from: python, numpy, torch (CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_trainer_state(folder: Path, rank: int, state: dict[str, Any]) -> None:
    """Write this rank's trainer state atomically into a checkpoint folder (`torch.save` of plain
    data, tensors and numpy arrays: what `load_checkpoint_file` reads back without running code)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomically(trainer_state_file(folder, rank), buffer.getvalue())


# Trainer states written before torch.save was used are raw pickles (protocol 4) of the same
# data; torch pickled their tensors through torch.storage._load_from_bytes, which would call
# torch.load(weights_only=False) on the bytes. They are read by this allow-list instead.
def _storage_from_bytes(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=True)


def _legacy_globals() -> dict[tuple[str, str], Any]:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1
        from numpy.core.multiarray import _reconstruct
    return {("collections", "OrderedDict"): OrderedDict, ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
            ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
            ("numpy._core.multiarray", "_reconstruct"): _reconstruct, ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
            ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}  # fmt: skip


class _LegacyTrainerStateUnpickler(pickle.Unpickler):
    """Plain data, OrderedDict, tensors and numpy arrays only: what old trainer states hold."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _legacy_globals()[(module, name)]
        except KeyError:
            raise UnsafeCheckpoint(f"names {module}.{name}, which a trainer state never holds") from None


def _read_trainer_state(path: Path) -> Any:
    """A trainer state file of either format; raises UnsafeCheckpoint naming the file for one that names other classes."""
    if zipfile.is_zipfile(path):
        return load_checkpoint_file(path)
    try:
        with open(path, "rb") as f:
            return _LegacyTrainerStateUnpickler(f).load()
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpoint(
            f"{path}: refused to load: {error}; nothing in it was run. A file this trainer wrote never names "
            "other classes: treat this one as damaged or crafted"
        ) from None


def load_trainer_state(folder: Path, rank: int, world_size: int) -> dict[str, Any]:
    """This rank's trainer state from a complete checkpoint folder.

    Raises CheckpointError when the file is missing (a checkpoint of another world size, or
    damaged) or was written by another world size (data positions are per rank), and
    UnsafeCheckpoint (nothing of it run) when it names a class or function a trainer state never holds.
    """
    path = trainer_state_file(folder, rank)
    if not path.is_file():
        saved = sorted(p.name for p in folder.glob("trainer_state_rank*.pt"))
        raise CheckpointError(
            f"{path} is missing: this is rank {rank} of {world_size}, the checkpoint holds {saved}; "
            "resume with the world size it was saved with"
        )
    state = _read_trainer_state(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a trainer state (a {type(state).__name__}, expected a dict)")
    if state.get("world_size") != world_size:
        raise CheckpointError(
            f"{path} was saved by a run of {state.get('world_size')} ranks, this run has {world_size}; "
            "the data-loader positions are per rank, resume with the same world size"
        )
    return state
