"""Logit processing shared by beam search and sampling, on (N, V + E) float32 logits.

Each step touches the whole vocabulary row of every hypothesis, so these avoid building
(N, V + E)-sized masks: banned tokens and repeated tokens are short index lists per row,
written with `scatter_` into the logits (a fresh tensor each step, changed in place).
"""

from __future__ import annotations

import numpy as np
import torch

BANNED_LOGIT = -10000.0  # what CPM-Bee writes over tokens a sample may not produce


def banned_columns(banned: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, V + E) bool "sample may not produce" -> (columns (B, K) long, valid (B, K) bool):
    each sample's banned token ids, padded to the longest list K (at least 1). Padding
    repeats the sample's first banned id, so that a scatter writes one value per column; a
    sample with none gets id 0 marked invalid (written back unchanged)."""
    counts = banned.sum(dim=1)
    width = max(1, int(counts.max()) if counts.numel() else 1)
    # a stable sort puts each row's banned ids first, in increasing order
    order = torch.sort(banned.to(torch.int8), dim=1, descending=True, stable=True).indices[:, :width]
    filled = torch.arange(width, device=banned.device)[None, :] < counts[:, None]
    columns = torch.where(filled, order, order[:, :1])
    valid = (counts > 0)[:, None].expand(-1, width)
    return torch.where(valid, columns, torch.zeros_like(columns)), valid.contiguous()


def ban(logits: torch.Tensor, columns: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Write BANNED_LOGIT at `columns` (N, K) where `valid`, in place (rows may differ in
    their lists; invalid padding keeps its value). Returns `logits`."""
    current = logits.gather(1, columns)
    logits.scatter_(1, columns, current.masked_fill(valid, BANNED_LOGIT))
    return logits


def apply_repetition_penalty(logits: torch.Tensor, previous: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty over the tokens in `previous` (N, T), once per distinct token: a positive
    logit divided by `penalty`, a negative one multiplied (CPM-Bee's `apply_repetition_penalty`,
    vectorised), in place. `penalty` 1.0 changes nothing and is skipped. Returns `logits`."""
    if penalty < 1.0:
        raise ValueError(f"repetition_penalty must be >= 1.0 (1.0 = none), got {penalty}")
    if penalty == 1.0 or previous.size(1) == 0:
        return logits
    previous = previous.long()
    # every copy of a repeated token gathers the same original logit, so each writes the same value
    seen = logits.gather(1, previous)
    logits.scatter_(1, previous, torch.where(seen < 0, seen * penalty, seen / penalty))
    return logits


def top_k_top_p_filter(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the `top_k` largest logits (0: all) and the smallest set whose probability reaches
    `top_p` (1.0: all; the most likely token always stays); the rest become -inf."""
    if top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0.0 < top_p < 1.0:
        order = _descending_order(logits)
        sorted_logits = logits.gather(-1, order)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative > top_p
        drop[..., 1:] = drop[..., :-1].clone()  # keep the token that crosses the threshold
        drop[..., 0] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def _descending_order(logits: torch.Tensor) -> torch.Tensor:
    """Indices sorting each row from the largest logit down. On CPU numpy's vectorised
    argsort (several times torch.sort's speed over a 86k vocabulary); equal logits may come
    in either order, which changes no probability mass."""
    if logits.device.type != "cpu":
        return torch.sort(logits, dim=-1, descending=True).indices
    negated = (-logits.float()).numpy()
    return torch.from_numpy(np.argsort(negated, axis=-1, kind="quicksort"))


def draw(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row from softmax(`logits`) (N, V + E) -> (N,) long, by inverting the
    cumulative distribution at one uniform draw per row: the distribution of
    `torch.multinomial(probs, 1)` at the cost of a cumulative sum, where multinomial draws an
    exponential per vocabulary entry (most of a small model's sampling step). Tokens at -inf
    (filtered out) have probability 0 and are never drawn."""
    cumulative = logits.softmax(dim=-1).cumsum(dim=-1)  # (N, V + E)
    total = cumulative[:, -1:]
    uniform = torch.rand(total.shape, generator=generator, device=logits.device, dtype=cumulative.dtype) * total
    # the first entry whose cumulative mass exceeds the draw: cumulative[i - 1] <= u < cumulative[i]
    picked = torch.searchsorted(cumulative, uniform, right=True)[:, 0]
    return picked.clamp(max=logits.size(-1) - 1)
