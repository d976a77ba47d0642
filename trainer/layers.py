"""CPM-Bee's building blocks in plain PyTorch, in the order data flows through them.

Module and parameter names follow CPM-Bee (`cpm_live`), so a `CPMBee` state dict *is* an
official checkpoint's layout (see `trainer.model` for loading and exporting). Shape legend:
B batch, L sequence, D dim_model, H heads, Dh dim_head, F dim_ff, E ext-table entries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# CPM-Bee tells `<mask_0>`, `<mask_1>`, ... apart by rotating the `<mask>` embedding by the
# sub-id times 16 (its `distance_scale`) with the usual rotary frequencies (base 10000).
ROTARY_DISTANCE_SCALE = 16
ROTARY_BASE = 10000
# Each residual sum is divided by 1.05 in CPM-Bee (keeps activations from growing per layer).
RESIDUAL_SCALE = 1.05


class ScaledLinear(nn.Module):
    """Linear map without bias whose output is divided by sqrt(dim_in) (weights start N(0, 1))."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.dim_in = dim_in
        self.weight = nn.Parameter(torch.empty(dim_out, dim_in))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # every module initialises itself in __init__: DeepSpeed's zero.Init partitions the
        # weights as soon as a module is built, after which a parent cannot reach them
        nn.init.normal_(self.weight, 0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight) / math.sqrt(self.dim_in)


class RMSNorm(nn.Module):
    """RMS layer norm; the mean square is taken in float32 whatever the input dtype."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(dim=-1, keepdim=True)
        return (x * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight


def rotate_by_sub(x: torch.Tensor, sub: torch.Tensor) -> torch.Tensor:
    """Rotary rotation of `x` (..., D) by the integer sub-ids `sub` (...).

    Angles are computed in float32 (CPM-Bee computes them in the weight dtype; identical in
    float32, more accurate under bf16) and the result has x's dtype.
    """
    dim = x.size(-1)
    inv_freq = 1.0 / (ROTARY_BASE ** (torch.arange(0, dim, 2, device=x.device, dtype=torch.float32) / dim))
    freqs = (sub * ROTARY_DISTANCE_SCALE)[..., None] * inv_freq  # (..., D/2) float32
    angles = torch.cat((freqs, freqs), dim=-1)  # (..., D)
    half = dim // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)  # (..., D)
    return (x * angles.cos() + rotated * angles.sin()).to(x.dtype)


class EmbeddingExt(nn.Module):
    """Token embedding scaled by 1/sqrt(D) and rotated by sub-id; also the tied output layer."""

    def __init__(self, vocab_size: int, dim: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.dim, self.init_std = dim, init_std
        self.weight = nn.Parameter(torch.empty(vocab_size, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, 0.0, self.init_std)

    def forward(self, ids: torch.Tensor, ids_sub: torch.Tensor) -> torch.Tensor:
        embeds = F.embedding(ids, self.weight) / math.sqrt(self.dim)  # (..., D)
        return rotate_by_sub(embeds, ids_sub)

    def projection(self, hidden: torch.Tensor, ext_table: torch.Tensor) -> torch.Tensor:
        """Logits over the vocabulary then the ext table: (B, L, D) -> (B, L, V + E).

        `ext_table` (E, D) is `forward(ext_ids, ext_sub)`, already scaled by 1/sqrt(D).
        """
        logits = F.linear(hidden / math.sqrt(self.dim), self.weight)  # (B, L, V)
        logits_ext = F.linear(hidden, ext_table)  # (B, L, E)
        return torch.cat([logits, logits_ext], dim=-1)


class BucketPositionBias(nn.Module):
    """Per-head attention bias looked up from relative-position and segment-relation buckets.

    Rows 0..num_buckets-1 of the table are relative-position buckets (used inside one
    segment); the next num_segment_buckets rows are segment-relation buckets 1.. (bucket 0
    means "same segment").
    """

    def __init__(self, num_heads: int, num_buckets: int, num_segment_buckets: int, max_distance: int) -> None:
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.relative_attention_bias = nn.Parameter(torch.empty(num_buckets + num_segment_buckets, num_heads))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.relative_attention_bias, 0.0, 1.0)

    def forward(self, query_pos: torch.Tensor, key_pos: torch.Tensor, rel_buckets: torch.Tensor) -> torch.Tensor:
        """(B, Lq), (B, Lk) positions and (B, Lq, Lk) segment buckets -> bias (B, H, Lq, Lk)."""
        with torch.no_grad():
            position_bucket = self.relative_position_bucket(key_pos[..., None, :] - query_pos[..., :, None])
            bucket = torch.where(rel_buckets == 0, position_bucket, rel_buckets - 1 + self.num_buckets)
        bias = F.embedding(bucket, self.relative_attention_bias)  # (B, Lq, Lk, H)
        return bias.permute(0, 3, 1, 2).contiguous()  # (B, H, Lq, Lk)

    def relative_position_bucket(self, relative: torch.Tensor) -> torch.Tensor:
        """T5-style buckets of key - query: half for each sign, exact up to a quarter of
        num_buckets, then logarithmic up to max_distance (the last bucket beyond)."""
        half = self.num_buckets // 2
        buckets = (relative > 0).to(torch.int32) * half
        distance = relative.abs()
        max_exact = half // 2
        # clamp only keeps log() finite where the exact branch is taken anyway
        log_ratio = torch.log(distance.clamp(min=max_exact).float() / max_exact) / math.log(self.max_distance / max_exact)
        large = max_exact + (log_ratio * (half - max_exact)).to(torch.int32)
        large = large.clamp(max=half - 1)
        return buckets + torch.where(distance < max_exact, distance.to(torch.int32), large)


@dataclass
class LayerKV:
    """One attention layer's key/value cache for incremental decoding: (N, H, C, Dh) each,
    C the capacity; columns [0, filled) hold the keys seen so far (`trainer.model.KVCache`)."""

    k: torch.Tensor
    v: torch.Tensor


class Attention(nn.Module):
    """Multi-head attention without biases; the position bias and masks come as one additive
    float mask to `scaled_dot_product_attention` (fused kernels on GPU)."""

    def __init__(self, dim_model: int, num_heads: int, dim_head: int, dropout_p: float) -> None:
        super().__init__()
        self.num_heads, self.dim_head, self.dropout_p = num_heads, dim_head, dropout_p
        self.project_q = ScaledLinear(dim_model, num_heads * dim_head)
        self.project_k = ScaledLinear(dim_model, num_heads * dim_head)
        self.project_v = ScaledLinear(dim_model, num_heads * dim_head)
        self.attention_out = ScaledLinear(num_heads * dim_head, dim_model)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor, row_valid: torch.Tensor) -> torch.Tensor:
        """x (B, L, D); attn_bias (B, H, L, L) with -inf where masked; row_valid (B, L): the
        query has at least one visible key. Rows without one give 0, as in CPM-Bee."""
        batch, seqlen, _ = x.shape
        q, k, v = (
            proj(x).view(batch, seqlen, self.num_heads, self.dim_head).transpose(1, 2)  # (B, H, L, Dh)
            for proj in (self.project_q, self.project_k, self.project_v)
        )
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_bias.to(q.dtype), dropout_p=self.dropout_p if self.training else 0.0
        )  # (B, H, L, Dh), scaled by 1/sqrt(Dh)
        out = out.masked_fill(~row_valid[:, None, :, None], 0.0)
        out = out.transpose(1, 2).reshape(batch, seqlen, self.num_heads * self.dim_head)  # (B, L, H*Dh)
        return self.attention_out(out)

    def forward_cached(
        self, x: torch.Tensor, attn_bias: torch.Tensor, row_valid: torch.Tensor, kv: LayerKV, start: int
    ) -> torch.Tensor:
        """Incremental decoding: x (N, Lq, D) are the new tokens, written into `kv` at columns
        [start, start + Lq); they attend over columns [0, start + Lq). attn_bias (N, H, Lq,
        start + Lq) with -inf where masked; row_valid (N, Lq) as in `forward`."""
        batch, seqlen, _ = x.shape
        end = start + seqlen
        q, k, v = (
            proj(x).view(batch, seqlen, self.num_heads, self.dim_head).transpose(1, 2)  # (N, H, Lq, Dh)
            for proj in (self.project_q, self.project_k, self.project_v)
        )
        kv.k[:, :, start:end] = k
        kv.v[:, :, start:end] = v
        out = F.scaled_dot_product_attention(q, kv.k[:, :, :end], kv.v[:, :, :end], attn_mask=attn_bias.to(q.dtype))
        out = out.masked_fill(~row_valid[:, None, :, None], 0.0)
        out = out.transpose(1, 2).reshape(batch, seqlen, self.num_heads * self.dim_head)  # (N, Lq, H*Dh)
        return self.attention_out(out)


class SelfAttentionBlock(nn.Module):
    """Pre-norm self-attention with the scaled residual."""

    def __init__(self, dim_model: int, num_heads: int, dim_head: int, eps: float, dropout_p: float) -> None:
        super().__init__()
        self.layernorm_before_attention = RMSNorm(dim_model, eps)
        self.self_attention = Attention(dim_model, num_heads, dim_head, dropout_p)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, hidden: torch.Tensor, attn_bias: torch.Tensor, row_valid: torch.Tensor) -> torch.Tensor:
        x = self.self_attention(self.layernorm_before_attention(hidden), attn_bias, row_valid)
        return (hidden + self.dropout(x)) / RESIDUAL_SCALE

    def forward_cached(
        self, hidden: torch.Tensor, attn_bias: torch.Tensor, row_valid: torch.Tensor, kv: LayerKV, start: int
    ) -> torch.Tensor:
        """`forward` for incremental decoding (see `Attention.forward_cached`)."""
        x = self.self_attention.forward_cached(self.layernorm_before_attention(hidden), attn_bias, row_valid, kv, start)
        return (hidden + self.dropout(x)) / RESIDUAL_SCALE


class GatedGeLU(nn.Module):
    """gelu(w_0 x) * (w_1 x): (..., D) -> (..., F)."""

    def __init__(self, dim_in: int, dim_ff: int) -> None:
        super().__init__()
        self.w_0 = ScaledLinear(dim_in, dim_ff)
        self.w_1 = ScaledLinear(dim_in, dim_ff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.w_0(x)) * self.w_1(x)


class FeedForward(nn.Module):
    """Gated-GeLU feed-forward: (..., D) -> (..., F) -> (..., D)."""

    def __init__(self, dim_model: int, dim_ff: int, dropout_p: float) -> None:
        super().__init__()
        self.w_in = GatedGeLU(dim_model, dim_ff)
        self.dropout = nn.Dropout(dropout_p)
        self.w_out = ScaledLinear(dim_ff, dim_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_out(self.dropout(self.w_in(x)))


class FFNBlock(nn.Module):
    """Pre-norm feed-forward with the scaled residual."""

    def __init__(self, dim_model: int, dim_ff: int, eps: float, dropout_p: float) -> None:
        super().__init__()
        self.layernorm_before_ffn = RMSNorm(dim_model, eps)
        self.ffn = FeedForward(dim_model, dim_ff, dropout_p)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.ffn(self.layernorm_before_ffn(hidden))
        return (hidden + self.dropout(x)) / RESIDUAL_SCALE


class TransformerBlock(nn.Module):
    """Attention then feed-forward; a module masked out (pruned) is absent, not zeroed."""

    def __init__(
        self,
        dim_model: int,
        dim_ff: int,
        num_heads: int,
        dim_head: int,
        eps: float,
        dropout_p: float,
        mask_att: bool = False,
        mask_ffn: bool = False,
    ) -> None:
        super().__init__()
        self.self_att = None if mask_att else SelfAttentionBlock(dim_model, num_heads, dim_head, eps, dropout_p)
        self.ffn = None if mask_ffn else FFNBlock(dim_model, dim_ff, eps, dropout_p)

    def forward(self, hidden: torch.Tensor, attn_bias: torch.Tensor, row_valid: torch.Tensor) -> torch.Tensor:
        if self.self_att is not None:
            hidden = self.self_att(hidden, attn_bias, row_valid)
        if self.ffn is not None:
            hidden = self.ffn(hidden)
        return hidden

    def forward_cached(
        self, hidden: torch.Tensor, attn_bias: torch.Tensor, row_valid: torch.Tensor, kv: LayerKV | None, start: int
    ) -> torch.Tensor:
        """`forward` for incremental decoding; `kv` is None exactly when attention is pruned."""
        if self.self_att is not None:
            hidden = self.self_att.forward_cached(hidden, attn_bias, row_valid, kv, start)
        if self.ffn is not None:
            hidden = self.ffn(hidden)
        return hidden
