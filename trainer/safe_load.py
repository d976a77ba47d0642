"""Reading checkpoint files without running what they contain.

A `.pt` file is a pickle: loaded the ordinary way it can call any function it names, so a
crafted checkpoint runs code on `--resume` or `init_from`. Every checkpoint this project reads
goes through `torch.load(weights_only=True)`: plain data, tensors, and the few classes named
in `ALLOWED_GLOBALS` (numpy arrays of RNG states; the loss scaler and ZeRO stage enum that
DeepSpeed 0.19 pickles into ZeRO-3 optimizer states). Anything else is refused before it is
built, with `UnsafeCheckpoint` naming the file.

- `load_checkpoint_file(path)`: our own reads (trainer state, `init_from` state dicts).
- `deepspeed_reads_restricted(folder)`: DeepSpeed's own reads (`engine.load_checkpoint`,
  `zero_to_fp32`) call `torch.load(weights_only=False)`; inside this context torch is forced
  to weights_only (`TORCH_FORCE_WEIGHTS_ONLY_LOAD`, read by torch at every call) with the same
  allow-list. A refusal is traced back to the file in `folder` that caused it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import pickle
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

# Classes and functions a checkpoint of this project may name, besides what torch's
# weights_only unpickler allows by itself (tensors, storages, dtypes, OrderedDict, ...).
# Found by listing the globals of real checkpoints (pickletools over data.pkl).
_NUMERIC_DTYPES = ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
                   "Float16", "Float32", "Float64")  # fmt: skip
ALLOWED_GLOBALS = (
    # numpy arrays and scalars of numeric types (np.random.get_state(), data-loader positions)
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray.scalar",
    "numpy.core.multiarray.scalar",
    "numpy.ndarray",
    "numpy.dtype",
    *(f"numpy.dtypes.{name}DType" for name in _NUMERIC_DTYPES),
    # DeepSpeed ZeRO-3 optimizer states (*_optim_states.pt): `loss_scaler`, `zero_stage`
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
    "deepspeed.runtime.zero.config.ZeroStageEnum",
)
_FORCE_ENV = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"


class UnsafeCheckpoint(pickle.UnpicklingError):
    """A checkpoint file that names a class or function outside the allow-list; nothing in it ran."""


def _resolve(dotted: str) -> Any | None:
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None  # numpy 1 vs 2 spellings; DeepSpeed absent where it is not used


@functools.cache
def allowed_globals() -> list[Any]:
    """The objects `ALLOWED_GLOBALS` names that exist in this environment."""
    return [obj for obj in map(_resolve, ALLOWED_GLOBALS) if obj is not None]


def _refusal(path: str | os.PathLike, error: Exception) -> UnsafeCheckpoint:
    # torch says "... Unsupported global: GLOBAL builtins.exec was not an allowed global ...
    # use add_safe_globals": keep the name, drop the advice to allow it
    text = str(error)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text) or re.search(r"got <class '([^']+)'>", text)
    if found:
        detail = f"it names {found.group(1)}, which is outside the allow-list of trainer.safe_load"
    else:
        detail = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
        detail = f"it is not plain checkpoint data: {detail.removeprefix('WeightsUnpickler error: ')}"
    return UnsafeCheckpoint(
        f"{path}: refused to load: {detail}; nothing in it was run. The files this trainer and DeepSpeed "
        "write never need more: treat this one as damaged or crafted"
    )


def load_checkpoint_file(path: str | os.PathLike, map_location: Any = "cpu", mmap: bool = False) -> Any:
    """`torch.load(path, weights_only=True)` with `ALLOWED_GLOBALS`.

    `mmap=True` maps tensor data instead of reading it (zip-format files only; for a check of
    what a file names, at the cost of its pickle alone). Raises UnsafeCheckpoint naming the file
    when it names anything else, FileNotFoundError, and torch's errors for a damaged file.
    """
    use_mmap = mmap and zipfile.is_zipfile(path)
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as error:
        raise _refusal(path, error) from None


# the files of a DeepSpeed checkpoint folder its loaders read (model and ZeRO optimizer states)
DEEPSPEED_FILES = "*_states.pt"


def first_unsafe_file(folder: str | os.PathLike, pattern: str = DEEPSPEED_FILES) -> UnsafeCheckpoint | None:
    """The refusal for the first file matching `pattern` in `folder` (sorted by name) that names
    a class or function outside the allow-list, or None when all are plain data. Tensor data is
    mapped, not read."""
    for path in sorted(Path(folder).glob(pattern)):
        try:
            load_checkpoint_file(path, mmap=True)
        except UnsafeCheckpoint as refusal:
            return refusal
        except (OSError, RuntimeError, ValueError, EOFError):  # damaged, not crafted: DeepSpeed's error says what
            continue
    return None


@contextlib.contextmanager
def deepspeed_reads_restricted(folder: str | os.PathLike) -> Iterator[None]:
    """Every `torch.load` inside the block runs as weights_only with `ALLOWED_GLOBALS`, whatever
    its caller asked for. A refused file is reported as UnsafeCheckpoint naming it (searched
    for in `folder`, the checkpoint being read). Not for concurrent use from several threads."""
    previous = os.environ.get(_FORCE_ENV)
    os.environ[_FORCE_ENV] = "1"
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            yield
    except pickle.UnpicklingError as error:
        if isinstance(error, UnsafeCheckpoint):
            raise
        raise (first_unsafe_file(folder) or _refusal(folder, error)) from None
    finally:
        if previous is None:
            os.environ.pop(_FORCE_ENV, None)
        else:
            os.environ[_FORCE_ENV] = previous
