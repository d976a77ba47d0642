"""`load_model`: a CPM-Bee model from any checkpoint a user has, the one call every user of a model makes.

Checkpoints it reads (`describe_checkpoint` tells which one a path is):
- `file`: a `.pt`/`.bin` state dict with cpm_live names (CPM-Bee's `bmt.save`, this project's
  `model.pt` / `bee export --format cpm-live`) or the HF port's names, or a `.safetensors` file;
- `hf`: a Hugging Face port folder (`config.json` + `model.safetensors` or `pytorch_model.bin`,
  or their sharded `*.index.json` form);
- `training`: this trainer's checkpoint folder (its root, whose `latest` is used, or one
  `step-N` folder): ZeRO-3 partitions consolidated parameter by parameter
  (`trainer.zero_checkpoint`).
Every `torch.load` is `weights_only=True` and memory-mapped, so a checkpoint is never in memory twice.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.distributed as dist

from schemas.model_config import PRESETS, ModelConfig, load_model_config, preset
from trainer.checkpoint import COMPLETE_FILE, LATEST_FILE, CheckpointDir
from trainer.lora import LORA_KEYS, add_lora, merge_lora
from trainer.model import CPMBee
from trainer.safe_load import UnsafeCheckpoint, load_checkpoint_file
from trainer.weight_names import CheckpointMismatch, check_checkpoint_fits, from_cpm_live_state_dict, to_cpm_live_name
from trainer.zero_checkpoint import ZeroCheckpoint

CheckpointKind = Literal["file", "hf", "training"]
# Written beside the weights by training saves and `bee export --format cpm-live`; the HF form
# uses the port's `config.json`.
MODEL_CONFIG_FILE = "model_config.json"
HF_CONFIG_FILE = "config.json"
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HF_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
DTYPES = {
    "fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
    "half": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}  # fmt: skip


class ModelLoadError(ValueError):
    """A checkpoint, model config or delta that cannot be loaded; the message says which and what to do."""


@dataclass(frozen=True)
class CheckpointSource:
    """What a checkpoint path is: its kind, the weights to read and where its model config may be."""

    kind: CheckpointKind
    weights: Path  # the file, the HF folder, or the training checkpoint's step folder
    config_files: tuple[Path, ...]  # where its model config may be, first existing one wins


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """`None` -> float32 (the dtype the model trains in); names as in `DTYPES`."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def describe_checkpoint(path: str | Path) -> CheckpointSource:
    """Which kind of checkpoint `path` is. Raises FileNotFoundError / ModelLoadError naming it."""
    path = Path(path)
    if path.is_file():
        # CPM-Bee ships cpm-bee-10b.pt with cpm-bee-10b.json; `bee export` writes the same pair
        return CheckpointSource("file", path, _configs_in(path.parent, first=path.with_suffix(".json")))
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist (no such checkpoint file or folder)")
    if (path / LATEST_FILE).is_file():
        tag = CheckpointDir(path).latest()
        if tag is None:
            raise ModelLoadError(f"{path}: `latest` names no complete checkpoint (a save was interrupted?)")
        return CheckpointSource("training", path / tag, _configs_in(path / tag) + _configs_in(path))
    if (path / COMPLETE_FILE).is_file():
        return CheckpointSource("training", path, _configs_in(path) + _configs_in(path.parent))
    if (path / HF_CONFIG_FILE).is_file() and any((path / name).is_file() for name in HF_WEIGHT_FILES + HF_INDEX_FILES):
        return CheckpointSource("hf", path, (path / HF_CONFIG_FILE,))
    raise ModelLoadError(
        f"{path}: not a checkpoint: expected a state dict file, a training checkpoint folder (with `latest` or "
        f"`{COMPLETE_FILE}`), or an HF port folder ({HF_CONFIG_FILE} + {' or '.join(HF_WEIGHT_FILES)})"
    )


def _configs_in(folder: Path, first: Path | None = None) -> tuple[Path, ...]:
    return ((first,) if first is not None else ()) + (folder / MODEL_CONFIG_FILE, folder / HF_CONFIG_FILE)


def resolve_model_config(model_config: str | None, source: CheckpointSource) -> ModelConfig:
    """The model config: a preset name, a config file (CPM-Bee JSON or HF `config.json`), or,
    when `model_config` is None, the one found beside the checkpoint."""
    if model_config is not None:
        if model_config in PRESETS:
            return preset(model_config)
        if not Path(model_config).is_file():
            raise ModelLoadError(f"model config {model_config!r} is neither a preset ({', '.join(PRESETS)}) nor a file")
        return load_model_config(model_config)
    for candidate in source.config_files:
        if candidate.is_file():
            return load_model_config(candidate)
    raise ModelLoadError(
        f"{source.weights}: no model config beside the checkpoint ({', '.join(str(p) for p in source.config_files)}): "
        f"name the model config (a preset: {', '.join(PRESETS)}, or a config file)"
    )


def _torch_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = load_checkpoint_file(path, mmap=True)  # torch's legacy (non-zip) files are read, not mapped
    except UnsafeCheckpoint:
        raise  # names the file and the global it refused
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ModelLoadError(f"{path}: cannot be read as a state dict of plain tensors: {error}") from None
    if isinstance(state, dict) and "lora" in state:
        raise ModelLoadError(f"{path} is a LoRA delta, not a model: pass it as the delta, with the base model's checkpoint")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{path}: expected a dict of tensors (a state dict)")
    return state


def _safetensors_file(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path, device="cpu")


def read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a `.safetensors` or a torch (`.pt`/`.bin`) file."""
    return _safetensors_file(path) if path.suffix == ".safetensors" else _torch_file(path)


def _hf_folder(folder: Path) -> dict[str, torch.Tensor]:
    for name in HF_WEIGHT_FILES:
        if (folder / name).is_file():
            return read_weights_file(folder / name)
    index_name = next(name for name in HF_INDEX_FILES if (folder / name).is_file())
    weight_map: dict[str, str] = json.loads((folder / index_name).read_text(encoding="utf-8"))["weight_map"]
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        state.update(read_weights_file(folder / shard))
    return state


def _zero_checkpoint(step_folder: Path):
    checkpoint = ZeroCheckpoint(step_folder)
    if checkpoint.names() and all(name.rsplit(".", 1)[-1] in LORA_KEYS for name in checkpoint.names()):
        raise ModelLoadError(
            f"{step_folder}: a LoRA run's checkpoint holds only the LoRA tensors: load the base model "
            f"(the run's finetune.init_from) with the run's delta.pt as the delta"
        )
    return checkpoint


def _training_checkpoint(step_folder: Path) -> dict[str, torch.Tensor]:
    return dict(_zero_checkpoint(step_folder).tensors())


def open_tensors(source: CheckpointSource) -> tuple[dict[str, tuple[int, ...]], Iterator[tuple[str, torch.Tensor]]]:
    """The checkpoint's shapes by cpm_live name, and its tensors one at a time in that order
    (a training checkpoint's are assembled only as the iterator reaches them)."""
    if source.kind == "training":
        checkpoint = _zero_checkpoint(source.weights)
        return checkpoint.shapes(), iter(checkpoint.tensors())
    state = {name: t for key, t in read_state_dict(source).items() if (name := to_cpm_live_name(key)) is not None}
    return {name: tuple(t.shape) for name, t in state.items()}, iter(state.items())


def load_weights_into(model: torch.nn.Module, checkpoint: str, config: ModelConfig) -> None:
    """Overwrite the weights of `model` (built from `config`, possibly ZeRO-3 partitioned under
    `deepspeed.zero.Init`) with a checkpoint's (any kind `load_model` reads).

    Partitioned: every rank must call it; rank 0 alone reads the checkpoint, one tensor at a
    time, and each parameter is gathered, overwritten on rank 0 and partitioned again, so no
    rank ever holds the whole model. Whole models read the (memory-mapped) checkpoint on each
    rank. Raises ModelLoadError (on every rank) naming the checkpoint and the problem.
    """
    import deepspeed  # here only: a slow import that picks an accelerator; export and generation never need it

    params = dict(model.named_parameters())
    if not any(hasattr(p, "ds_id") for p in params.values()):
        try:
            shapes, tensors = open_tensors(describe_checkpoint(checkpoint))
            check_checkpoint_fits(config, shapes)
        except (OSError, ValueError) as error:
            raise ModelLoadError(f"init_from {checkpoint}: {error}") from None
        model.load_state_dict(dict(tensors), strict=True)
        return
    rank = dist.get_rank()
    verdict: list[object] = [None]
    tensors: Iterator[tuple[str, torch.Tensor]] = iter(())
    if rank == 0:
        try:
            shapes, tensors = open_tensors(describe_checkpoint(checkpoint))
            check_checkpoint_fits(config, shapes)
            verdict = [list(shapes)]
        except (OSError, ValueError) as error:
            verdict = [str(error)]
    dist.broadcast_object_list(verdict, src=0)  # the names in reading order, or rank 0's error
    if isinstance(verdict[0], str):
        raise ModelLoadError(f"init_from {checkpoint}: {verdict[0]}")
    for name in verdict[0]:
        tensor = next(tensors)[1] if rank == 0 else None
        param = params[name]
        with deepspeed.zero.GatheredParameters([param], modifier_rank=0):
            if rank == 0:
                with torch.no_grad():
                    param.data.copy_(tensor)


def read_state_dict(source: CheckpointSource) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors by name (cpm_live or HF names), fp32 for training checkpoints."""
    if source.kind == "file":
        return read_weights_file(source.weights)
    if source.kind == "hf":
        return _hf_folder(source.weights)
    return _training_checkpoint(source.weights)


def read_delta(path: str | Path) -> dict:
    """A LoRA delta written by fine-tuning (`{"lora": {name: tensor}, "rank", "alpha", "targets"}`)."""
    path = Path(path)
    try:
        delta = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ModelLoadError(f"{path}: cannot be read as a LoRA delta: {error}") from None
    if not isinstance(delta, dict) or not {"lora", "rank", "alpha", "targets"} <= delta.keys():
        raise ModelLoadError(f"{path}: not a LoRA delta (expected the keys lora, rank, alpha, targets that fine-tuning writes)")
    return delta


def merge_delta(model: CPMBee, delta: dict, source: str = "delta") -> None:
    """Fold a LoRA delta into the model's weights, in place. Raises ModelLoadError when its
    tensors do not fit the model."""
    add_lora(model, delta["targets"], delta["rank"], delta["alpha"])
    lora = {name: tensor.float() for name, tensor in delta["lora"].items()}
    result = model.load_state_dict(lora, strict=False)
    wanted = {name for name in model.state_dict() if name.rsplit(".", 1)[-1] in ("lora_A", "lora_B")}
    if result.unexpected_keys or wanted - lora.keys():
        raise ModelLoadError(
            f"{source}: the delta does not fit the model: {len(result.unexpected_keys)} unexpected tensors "
            f"({', '.join(result.unexpected_keys[:3])}), {len(wanted - lora.keys())} missing; was it trained on this base?"
        )
    merge_lora(model)
    model.requires_grad_(True)


def load_model(
    checkpoint: str,
    model_config: str | None = None,
    delta: str | None = None,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[CPMBee, ModelConfig]:
    """A CPM-Bee model, in eval mode, from a checkpoint of any kind (see the module docstring).

    `model_config`: a preset name or a config file (CPM-Bee JSON or the HF port's config.json);
    None looks beside the checkpoint (`model_config.json`, `config.json`). `delta`: a LoRA
    delta (`delta.pt` of a LoRA fine-tune) merged into the weights. `dtype`: the weights'
    dtype (default float32; `fp16`, `bf16`, a torch dtype). Returns (model, its config).
    Raises FileNotFoundError, ModelLoadError, CheckpointMismatch (config and weights disagree)
    or schemas.SchemaError (a bad config file), each naming the file.
    """
    source = describe_checkpoint(checkpoint)
    config = resolve_model_config(model_config, source)
    target = resolve_dtype(dtype)
    state = read_state_dict(source)
    # merge in float32: the LoRA product is added to the base before rounding to a half type
    build_dtype = torch.float32 if delta is not None else target
    try:
        model = from_cpm_live_state_dict(config, state, dtype=build_dtype, copy=False)
    except CheckpointMismatch as error:
        raise CheckpointMismatch(f"{source.weights}: {error}") from None
    del state
    if delta is not None:
        merge_delta(model, read_delta(delta), str(delta))
        model.to(target)
    return model.to(device).eval(), config

