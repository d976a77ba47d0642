"""CPM-Bee's weights under official names: a `CPMBee` from a cpm_live or Hugging Face port state
dict, and its state dict in either layout.

The model's own parameter names are cpm_live's (`encoder.layers.0.self_att.self_attention.project_q.weight`,
`input_embedding.weight`, ...); the HF port puts `cpmbee.` before each and adds an unused
`lm_head.weight` tied to the input embedding.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from schemas.model_config import ModelConfig
from trainer.model import CPMBee

HF_PREFIX = "cpmbee."
# The HF port ties lm_head to the input embedding and never reads it: dropped on load.
HF_IGNORED_KEYS = frozenset({"lm_head.weight"})


class CheckpointMismatch(ValueError):
    """A state dict does not fit the model built from a ModelConfig."""


def from_cpm_live_state_dict(
    config: ModelConfig,
    state_dict: Mapping[str, torch.Tensor],
    activation_checkpointing: bool = False,
    *,
    dtype: torch.dtype = torch.float32,
    copy: bool = True,
) -> CPMBee:
    """Build a `CPMBee` from an official CPM-Bee checkpoint or a Hugging Face port's weights.

    Takes the model config and a state dict in either layout: cpm_live names
    (`encoder.layers.0.self_att.self_attention.project_q.weight`, `input_embedding.weight`,
    `position_bias.relative_attention_bias`, ...) or the HF port's (the same behind
    `cpmbee.`, plus an unused `lm_head.weight`). Tensors are cast to `dtype` (float32, the
    dtype the model trains in, by default). The model is built on the meta device and takes
    the tensors as its parameters, so its weights are in memory once; with `copy=False` a
    tensor already of `dtype` becomes the parameter itself (for callers handing over tensors
    they own, such as a memory-mapped file's). Returns the model. Raises CheckpointMismatch
    listing every missing key, unexpected key and shape mismatch (a pruned module named by
    `mask_modules` has no weights).
    """
    with torch.device("meta"):  # no weights allocated: the checkpoint's tensors become the parameters
        model = CPMBee(config, activation_checkpointing=activation_checkpointing)
    is_hf = any(key.startswith(HF_PREFIX) for key in state_dict)
    cpm_live = _strip_hf_prefix(state_dict) if is_hf else dict(state_dict)
    check_checkpoint_fits(config, {key: tuple(value.shape) for key, value in cpm_live.items()}, is_hf)
    tensors = {key: value.to(dtype, copy=copy) for key, value in cpm_live.items()}
    model.load_state_dict(tensors, strict=True, assign=True)
    return model


def check_checkpoint_fits(config: ModelConfig, shapes: Mapping[str, tuple[int, ...]], is_hf: bool = False) -> None:
    """Raise CheckpointMismatch listing every missing key, unexpected key and shape mismatch
    between a checkpoint's tensors (`shapes`, cpm_live names) and the model `config` builds."""
    with torch.device("meta"):
        expected = {key: tuple(value.shape) for key, value in CPMBee(config).state_dict().items()}
    missing = sorted(expected.keys() - shapes.keys())
    unexpected = sorted(shapes.keys() - expected.keys())
    mismatched = sorted(
        f"{key}: checkpoint {tuple(shapes[key])} vs model {expected[key]}"
        for key in expected.keys() & shapes.keys()
        if tuple(shapes[key]) != expected[key]
    )
    if missing or unexpected or mismatched:
        problems = [
            f"{what} ({len(items)}): {_listing(items)}"
            for what, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched))
            if items
        ]  # fmt: skip
        raise CheckpointMismatch(
            f"{'Hugging Face' if is_hf else 'cpm_live'} checkpoint does not fit ModelConfig(num_layers={config.num_layers}, "
            f"dim_model={config.dim_model}, vocab_size={config.vocab_size}, "
            f"mask_modules={'set' if config.mask_modules else 'None'}): " + "; ".join(problems)
            + ". Check that the model config is the checkpoint's (sizes, num_layers, mask_modules)."
        )


def to_cpm_live_name(key: str) -> str | None:
    """A checkpoint key under cpm_live naming (the HF port's `cpmbee.` prefix removed), or None
    for the HF port's unused tied `lm_head.weight`."""
    return None if key in HF_IGNORED_KEYS else key.removeprefix(HF_PREFIX)


def _listing(items: list[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... and {len(items) - limit} more"


def _strip_hf_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # keys without the prefix stay as they are, so that they surface as unexpected keys
    return {name: value for key, value in state_dict.items() if (name := to_cpm_live_name(key)) is not None}


def to_cpm_live_state_dict(model: CPMBee) -> dict[str, torch.Tensor]:
    """The model's weights under cpm_live names (CPM-Bee's `bmt.save` layout), detached copies."""
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def to_hf_state_dict(model: CPMBee) -> dict[str, torch.Tensor]:
    """The model's weights under the HF port's names (`cpmbee.` + cpm_live name), detached
    copies; `lm_head.weight` is left out as the port ties it to `cpmbee.input_embedding.weight`."""
    return {HF_PREFIX + key: value for key, value in to_cpm_live_state_dict(model).items()}
