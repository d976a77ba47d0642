"""Load a model for inference: `load_model(checkpoint, model_config, delta, dtype, device)`.

MINIMAL STAND-IN, written on the `generation` branch so that `bee generate` runs before the
full loader lands. The helper `checkpoints-io` builds the real `trainer.model_io` (every
checkpoint kind: CPM-Bee .pt, HF port file/folder, ZeRO-3 streamed; CPM-Bee and HF configs):
on merge, keep checkpoints-io's file whole and drop this one. Same signature.

Here: a `.pt`/`.bin` state dict (cpm_live names or the HF port's) or one of this trainer's
checkpoint folders (via `trainer.finetune.load_pretrained_state`), a config that is a preset
name or a `ModelConfig` JSON file (default: `model_config.json`/`config.json` beside the
checkpoint), and a LoRA `delta.pt` of a LoRA fine-tune, merged into the weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from schemas.loading import load_file
from schemas.model_config import PRESETS, ModelConfig, preset
from trainer.model import CPMBee, from_cpm_live_state_dict

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
          "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}  # fmt: skip
CONFIG_NAMES = ("model_config.json", "config.json")


class ModelLoadError(ValueError):
    """A checkpoint, config or delta that cannot be loaded; the message names the file."""


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype or torch.float32
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    return DTYPES[dtype]


def _model_config(model_config: str | None, checkpoint: Path) -> ModelConfig:
    if model_config is None:
        folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
        found = [folder / name for name in CONFIG_NAMES if (folder / name).is_file()]
        if not found:
            raise ModelLoadError(
                f"{checkpoint}: no model config given and none beside it ({', '.join(CONFIG_NAMES)}); "
                f"pass --model-config with a config file or a preset ({', '.join(PRESETS)})"
            )
        model_config = str(found[0])
    if model_config in PRESETS:
        return preset(model_config)
    return load_file(ModelConfig, model_config)


def load_model(
    checkpoint: str,
    model_config: str | None = None,
    delta: str | None = None,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[CPMBee, ModelConfig]:
    """A CPM-Bee model in eval mode and its config. Raises FileNotFoundError, ModelLoadError,
    trainer.model.CheckpointMismatch or schemas.SchemaError, each naming the file."""
    from trainer.finetune import load_pretrained_state

    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    config = _model_config(model_config, path)
    model = from_cpm_live_state_dict(config, load_pretrained_state(str(path)))
    if delta is not None:
        _merge_delta(model, Path(delta))
    return model.to(device=device, dtype=resolve_dtype(dtype)).eval(), config


def _merge_delta(model: CPMBee, path: Path) -> None:
    from trainer.lora import add_lora, merge_lora

    if not path.is_file():
        raise FileNotFoundError(f"delta {path} does not exist")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or not {"lora", "rank", "alpha", "targets"} <= payload.keys():
        raise ModelLoadError(f"{path}: not a LoRA delta of this trainer (needs keys lora, rank, alpha, targets)")
    add_lora(model, payload["targets"], payload["rank"], payload["alpha"])
    missing = set(name for name, _ in model.named_parameters() if name.rsplit(".", 1)[-1] in ("lora_A", "lora_B"))
    missing -= payload["lora"].keys()
    unexpected = payload["lora"].keys() - {name for name, _ in model.named_parameters()}
    if missing or unexpected:
        raise ModelLoadError(f"{path}: delta does not fit the model (missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})")
    model.load_state_dict(payload["lora"], strict=False)
    merge_lora(model)
