"""Whole weights out of a DeepSpeed ZeRO-3 checkpoint folder, one parameter at a time.

DeepSpeed 0.19.8 saves, per rank r of W, `zero_pp_rank_<r>_mp_rank_00_model_states.pt` (the
parameter names and shapes per optimizer group, buffers, frozen parameters' fragments) and
`*zero_pp_rank_<r>_mp_rank_00_optim_states.pt` (its fp32 master partitions: one flat tensor
per group). A parameter of n elements is cut into W pieces of ceil(n / W) (the last padded);
rank r's flat group holds its piece of every parameter of the group, in order. The optimizer
files are memory-mapped, so a parameter is read from disk only when it is assembled and no
process holds the whole model twice (`deepspeed.utils.zero_to_fp32` loads every file
whole, and unpickles it with `weights_only=False`; here every load is `weights_only=True`).
"""

from __future__ import annotations

import math
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from trainer.safe_load import UnsafeCheckpoint, load_checkpoint_file

MODEL_STATES = re.compile(r"^zero_pp_rank_(\d+)_mp_rank_00_model_states\.pt$")
OPTIM_STATES = re.compile(r"^(?:bf16_)?zero_pp_rank_(\d+)_mp_rank_00_optim_states\.pt$")


class ZeroCheckpointError(ValueError):
    """A folder that is not a complete ZeRO-3 checkpoint; the message names it and what is wrong."""


def safe_load(path: Path, mmap: bool = False) -> Any:
    """A DeepSpeed file read as plain data (`trainer.safe_load`'s allow-list: no code runs while reading it)."""
    try:
        return load_checkpoint_file(path, mmap=mmap)
    except UnsafeCheckpoint:
        raise  # names the file and the global it refused
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ZeroCheckpointError(f"{path}: cannot be read as plain tensors and data: {error}") from None


def _rank_files(folder: Path, pattern: re.Pattern[str], what: str) -> list[Path]:
    found = {int(m.group(1)): folder / name for name in (p.name for p in folder.iterdir()) if (m := pattern.match(name))}
    if not found:
        raise ZeroCheckpointError(f"{folder}: no {what} files: not a DeepSpeed ZeRO checkpoint folder")
    if sorted(found) != list(range(len(found))):
        raise ZeroCheckpointError(f"{folder}: {what} files for ranks {sorted(found)}: some rank's file is missing")
    return [found[r] for r in range(len(found))]


class ZeroCheckpoint:
    """One step folder of a ZeRO-3 checkpoint. `names()` lists what `tensors()` yields."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        model_files = _rank_files(self.folder, MODEL_STATES, "model-states")
        self.world_size = len(model_files)
        first = safe_load(model_files[0])
        self.param_shapes: list[dict[str, torch.Size]] = [dict(group) for group in first["param_shapes"]]
        self.frozen_shapes: dict[str, torch.Size] = dict(first.get("frozen_param_shapes") or {})
        self.buffer_names: list[str] = list(first.get("buffer_names") or [])
        self.buffers = {k: v for k, v in first["module"].items() if k in self.buffer_names}
        self.shared: dict[str, str] = dict(first.get("shared_params") or {})
        self._model_files = model_files
        self._optim_files = _rank_files(self.folder, OPTIM_STATES, "optimizer-states")
        if len(self._optim_files) != self.world_size:
            raise ZeroCheckpointError(
                f"{self.folder}: {self.world_size} model-states files but {len(self._optim_files)} optimizer-states files"
            )

    def names(self) -> list[str]:
        """Every tensor name, in the order `tensors()` yields them."""
        trainable = [name for group in self.param_shapes for name in group]
        return [*self.buffers, *self.frozen_shapes, *trainable, *self.shared]

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, whole fp32 tensor) for every buffer, frozen and trainable parameter, one at a
        time. Raises ZeroCheckpointError when the partitions do not add up to the shapes."""
        sources = set(self.shared.values())
        kept: dict[str, torch.Tensor] = {}  # only the sources of shared (tied) parameters
        for name, tensor in self._own_tensors():
            if name in sources:
                kept[name] = tensor
            yield name, tensor
        for alias, source in self.shared.items():
            if source in kept:
                yield alias, kept[source]

    def _own_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name, tensor in self.buffers.items():
            yield name, tensor.float() if tensor.is_floating_point() else tensor
        if self.frozen_shapes:
            fragments = [safe_load(path)["frozen_param_fragments"] for path in self._model_files]
            for name, shape in self.frozen_shapes.items():
                whole = torch.cat([frags[name].reshape(-1) for frags in fragments])[: shape.numel()]
                yield name, whole.view(shape).clone()
            del fragments
        yield from self._trainable()

    def _trainable(self) -> Iterator[tuple[str, torch.Tensor]]:
        # Per rank, its flat fp32 sub-groups (memory-mapped) read as one concatenation: the
        # parameters of every group follow each other there, ceil(n / W) elements each.
        flat_groups = []
        for path in self._optim_files:
            state = safe_load(path, mmap=True)["optimizer_state_dict"]
            if state.get("zero_stage") != 3:
                raise ZeroCheckpointError(f"{path}: ZeRO stage {state.get('zero_stage')}: only stage 3 checkpoints are read")
            flat_groups.append(list(state["fp32_flat_groups"]))
        bounds = [0]
        for flat in flat_groups[0]:
            bounds.append(bounds[-1] + flat.numel())
        offset = 0
        for name, shape in ((n, s) for group in self.param_shapes for n, s in group.items()):
            numel = shape.numel()
            part = math.ceil(numel / self.world_size)
            if offset + part > bounds[-1]:
                raise ZeroCheckpointError(f"{self.folder}: the partitions end before {name} {tuple(shape)}")
            pieces = [piece for rank in flat_groups for piece in _span(rank, bounds, offset, offset + part)]
            yield name, torch.cat(pieces)[:numel].view(shape)  # a copy: reads this parameter only
            offset += part
        if offset != bounds[-1]:
            raise ZeroCheckpointError(f"{self.folder}: each rank holds {bounds[-1]} elements, its parameters {offset}")

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor's shape by name (buffers, frozen, trainable, shared aliases)."""
        shapes = {name: tuple(t.shape) for name, t in self.buffers.items()}
        shapes |= {name: tuple(s) for name, s in self.frozen_shapes.items()}
        shapes |= {name: tuple(s) for group in self.param_shapes for name, s in group.items()}
        shapes |= {alias: shapes[source] for alias, source in self.shared.items() if source in shapes}
        return shapes


def _span(flats: list[torch.Tensor], bounds: list[int], start: int, end: int) -> list[torch.Tensor]:
    """The slices of one rank's flat groups (starting at `bounds`) covering [start, end)."""
    pieces = []
    for flat, lo, hi in zip(flats, bounds, bounds[1:]):
        if lo < end and start < hi:
            pieces.append(flat[max(start, lo) - lo : min(end, hi) - lo])
    return pieces
