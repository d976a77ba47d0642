"""LoRA for CPM-Bee's projections: a trainable low-rank update beside each frozen `ScaledLinear`.

`y = W x / sqrt(d_in) + (alpha / r) * B A dropout(x)` with A (r, d_in) drawn like a linear
layer's weight and B (d_out, r) zero, so training starts from the pretrained model exactly.
The wrapped module keeps the base weight under its old name (`...project_q.weight`), so the
model's state dict stays in cpm_live layout; the update adds `...project_q.lora_A/lora_B`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from trainer.layers import ScaledLinear

LORA_KEYS = ("lora_A", "lora_B")


class LoRAScaledLinear(ScaledLinear):
    """A `ScaledLinear` sharing `base`'s weight, plus a LoRA update of rank `rank`."""

    def __init__(self, base: ScaledLinear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        dim_out, dim_in = base.weight.shape
        super().__init__(dim_in, dim_out)
        self.weight = base.weight  # the same Parameter: frozen by the caller, name unchanged
        self.scaling = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, dim_in, dtype=base.weight.dtype))
        self.lora_B = nn.Parameter(torch.zeros(dim_out, rank, dtype=base.weight.dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B)  # (..., d_out)
        return super().forward(x) + update * self.scaling

    def merged_weight(self) -> torch.Tensor:
        """The plain ScaledLinear weight equal to this module (update folded in; the base
        divides by sqrt(d_in), so the update is multiplied by it)."""
        return self.weight + (self.lora_B @ self.lora_A) * self.scaling * math.sqrt(self.dim_in)


def add_lora(model: nn.Module, targets: Iterable[str], rank: int, alpha: float, dropout: float = 0.0) -> list[str]:
    """Replace every `ScaledLinear` whose attribute name is in `targets` by a LoRA module and
    freeze everything else. Returns the qualified names replaced.
    Raises ValueError when no module matches (a typo in the target names)."""
    targets = set(targets)
    replaced = []
    for parent_name, parent in list(model.named_modules()):
        for name, child in list(parent.named_children()):
            if name in targets and isinstance(child, ScaledLinear) and not isinstance(child, LoRAScaledLinear):
                setattr(parent, name, LoRAScaledLinear(child, rank, alpha, dropout))
                replaced.append(f"{parent_name}.{name}" if parent_name else name)
    if not replaced:
        raise ValueError(f"no ScaledLinear named any of {sorted(targets)} in the model: nothing to adapt")
    for param_name, param in model.named_parameters():
        param.requires_grad = param_name.rsplit(".", 1)[-1] in LORA_KEYS
    return replaced


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the LoRA tensors (the delta), detached copies, by qualified name."""
    return {
        name: value.detach().clone()
        for name, value in model.state_dict().items()
        if name.rsplit(".", 1)[-1] in LORA_KEYS
    }


def merge_lora(model: nn.Module) -> None:
    """Fold every LoRA update into its base weight and put plain `ScaledLinear`s back, in place."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRAScaledLinear):
                plain = ScaledLinear(child.dim_in, child.weight.shape[0])
                with torch.no_grad():
                    plain.weight.copy_(child.merged_weight())
                setattr(parent, name, plain)
