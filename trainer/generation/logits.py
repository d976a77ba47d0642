"""Logit processing shared by beam search and sampling (in place on (N, V + E) float32)."""

from __future__ import annotations

import torch

BANNED_LOGIT = -10000.0  # what CPM-Bee writes over tokens a sample may not produce


def apply_repetition_penalty(logits: torch.Tensor, previous: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty over the tokens in `previous` (N, T), once per distinct token: a positive
    logit divided by `penalty`, a negative one multiplied (CPM-Bee's `apply_repetition_penalty`,
    vectorised). `penalty` 1.0 changes nothing and is skipped."""
    if penalty < 1.0:
        raise ValueError(f"repetition_penalty must be >= 1.0 (1.0 = none), got {penalty}")
    if penalty == 1.0 or previous.size(1) == 0:
        return logits
    seen = torch.zeros_like(logits, dtype=torch.bool)
    seen.scatter_(1, previous.long(), True)
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalised, logits)


def top_k_top_p_filter(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the `top_k` largest logits (0: all) and the smallest set whose probability reaches
    `top_p` (1.0: all; the most likely token always stays); the rest become -inf."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative > top_p
        drop[..., 1:] = drop[..., :-1].clone()  # keep the token that crosses the threshold
        drop[..., 0] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits
