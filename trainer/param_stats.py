"""CPM-Bee's `--inspect-iters`: mean, std and max of the weights and gradients, per parameter group.

A group is a parameter name with its layer number replaced by `*`
(`encoder.layers.*.self_att.self_attention.project_q.weight`), so a 48-layer model gives a
dozen groups rather than CPM-Bee's per-tensor table. Under ZeRO-3 each rank sums over its own
partitions (count, sum, sum of squares, max) and the sums are all-reduced: no parameter or
gradient is gathered. Call `parameter_stats` after backward and before the optimizer step
(the step frees the gradients); every rank must call it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import torch
import torch.distributed as dist

LAYER_NUMBER = re.compile(r"\.\d+\.")
STATS = ("mean", "std", "max")


def group_name(parameter_name: str) -> str:
    """`encoder.layers.7.ffn.ffn.w_out.weight` -> `encoder.layers.*.ffn.ffn.w_out.weight`."""
    return LAYER_NUMBER.sub(".*.", parameter_name)


def _local_values(param: torch.nn.Parameter, rank: int, world_size: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """This rank's share of a parameter's fp32 weights and gradient, flat, without padding.
    A whole (unpartitioned) parameter counts on rank 0 only."""
    from deepspeed.utils import safe_get_full_grad, safe_get_local_fp32_param, safe_get_local_grad

    if not hasattr(param, "ds_id"):  # not partitioned: every rank holds it whole
        if rank != 0:
            return None, None
        grad = safe_get_full_grad(param) if param.requires_grad else None
        return param.detach().float().reshape(-1), None if grad is None else grad.float().reshape(-1)
    # rank r holds elements [r * part, (r + 1) * part) of the flat parameter; the last is zero-padded
    part = param.ds_tensor.numel()
    valid = max(0, min(part, param.ds_numel - rank * part))
    weight = safe_get_local_fp32_param(param)
    grad = safe_get_local_grad(param) if param.requires_grad else None
    if weight is None:  # a frozen parameter has no fp32 master copy: its own partition
        weight = param.ds_tensor
    weight = weight.detach().float().reshape(-1)[:valid]
    grad = None if grad is None else grad.detach().float().reshape(-1)[:valid]
    return weight, grad


def parameter_stats(
    named_parameters: Iterable[tuple[str, torch.nn.Parameter]], device: torch.device
) -> dict[str, dict[str, float]]:
    """`{group: {"weight_mean", "weight_std", "weight_max", "grad_mean", "grad_std", "grad_max"}}`
    over all ranks (grad_* only for groups that train). Every rank gets the same result."""
    distributed = dist.is_available() and dist.is_initialized()
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    groups: dict[str, int] = {}
    sums: list[list[float]] = []  # per (group, kind): count, sum, sum of squares
    maxima: list[float] = []
    for name, param in named_parameters:
        weight, grad = _local_values(param, rank, world_size)
        index = groups.setdefault(group_name(name), len(groups))
        if index == len(sums) // 2:
            sums += [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
            maxima += [-math.inf, -math.inf]
        for kind, values in enumerate((weight, grad)):
            if values is None or values.numel() == 0:
                continue
            slot = 2 * index + kind
            sums[slot][0] += values.numel()
            sums[slot][1] += float(values.double().sum())
            sums[slot][2] += float(values.double().square().sum())
            maxima[slot] = max(maxima[slot], float(values.max()))
    total = torch.tensor(sums, dtype=torch.float64, device=device).reshape(-1, 3)
    top = torch.tensor(maxima, dtype=torch.float64, device=device)
    if distributed:
        dist.all_reduce(total)
        dist.all_reduce(top, op=dist.ReduceOp.MAX)
    result: dict[str, dict[str, float]] = {}
    for group, index in groups.items():
        stats: dict[str, float] = {}
        for kind, prefix in enumerate(("weight", "grad")):
            count, s, sq = total[2 * index + kind].tolist()
            if count == 0:
                continue
            mean = s / count
            stats |= {f"{prefix}_mean": mean, f"{prefix}_std": math.sqrt(max(sq / count - mean * mean, 0.0)),
                      f"{prefix}_max": float(top[2 * index + kind])}  # fmt: skip
        result[group] = stats
    return result
