"""The CPM-Bee model (`CPMBee`); its weights under official names are trainer/weight_names.py.

Single-device plain PyTorch, numerically equal to CPM-Bee's `CPMBeeTorch` in float32
(checked by tests/trainer/test_model.py against a golden fixture made with the reference).
Dtype and parallelism belong to the train loop: the model is built in float32 and DeepSpeed
casts it (`ModelConfig.half` is read there). Shape legend: B batch, L sequence, D dim_model,
H heads, V vocab_size, E ext-table entries, S segment-relation entries per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from schemas.model_config import ModelConfig
from trainer.layers import BucketPositionBias, EmbeddingExt, LayerKV, RMSNorm, TransformerBlock

# CPM-Bee's initial token embedding is N(0, 0.02); linears and the position bias start
# N(0, 1) (their outputs are scaled), norms at 1: each module in trainer/layers.py.
EMBEDDING_INIT_STD = 0.02


class Encoder(nn.Module):
    """The transformer blocks plus the final RMS norm."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        masks = config.mask_modules or [(False, False)] * config.num_layers
        self.layers = nn.ModuleList(
            TransformerBlock(
                config.dim_model, config.dim_ff, config.num_heads, config.dim_head, config.eps, config.dropout_p,
                mask_att=mask_att, mask_ffn=mask_ffn,
            )
            for mask_att, mask_ffn in masks
        )  # fmt: skip
        self.output_layernorm = RMSNorm(config.dim_model, config.eps)
        self.activation_checkpointing = False

    def forward(self, hidden: torch.Tensor, attn_bias: torch.Tensor, row_valid: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            if self.activation_checkpointing and self.training and torch.is_grad_enabled():
                # recompute the block in backward: memory O(layers x B x L x D) instead of every activation
                hidden = checkpoint(layer, hidden, attn_bias, row_valid, use_reentrant=False)
            else:
                hidden = layer(hidden, attn_bias, row_valid)
        return self.output_layernorm(hidden)


class CPMBee(nn.Module):
    """CPM-Bee: rotary-by-sub-id embeddings, bucketed position/segment bias, pre-norm blocks,
    logits over the tied vocabulary plus the batch's ext table."""

    def __init__(self, config: ModelConfig, activation_checkpointing: bool = False) -> None:
        super().__init__()
        self.config = config
        self.input_embedding = EmbeddingExt(config.vocab_size, config.dim_model, init_std=EMBEDDING_INIT_STD)
        self.position_bias = BucketPositionBias(
            config.num_heads,
            config.position_bias_num_buckets,
            config.position_bias_num_segment_buckets,
            config.position_bias_max_distance,
        )
        self.encoder = Encoder(config)
        if activation_checkpointing:
            self.enable_activation_checkpointing()

    def reset_parameters(self) -> None:
        """Draw fresh weights from the global torch RNG (seed it for a reproducible model;
        construction already does this, module by module)."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def enable_activation_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block's activations during backward (training only)."""
        self.encoder.activation_checkpointing = enabled

    def forward(
        self,
        input: torch.Tensor,  # (B, L) int token ids, < V
        input_sub: torch.Tensor,  # (B, L) int sub-ids (0 for plain text)
        length: torch.Tensor,  # (B,) int valid tokens per row; the rest is padding
        context: torch.Tensor,  # (B, L) bool: token is context (seen bidirectionally)
        sample_ids: torch.Tensor,  # (B, L) int: 0 main sample, k > 0 the k-th in-context sample
        num_segments: torch.Tensor,  # (B, L) int segments of the token's sample
        segment: torch.Tensor,  # (B, L) int segment id of the token within its sample
        segment_rel_offset: torch.Tensor,  # (B, L) int offset of its sample's block in segment_rel
        segment_rel: torch.Tensor,  # (B, S) int segment-relation buckets, num_segments^2 per sample
        span: torch.Tensor,  # (B, L) int packed instance id within the row
        ext_table_ids: torch.Tensor,  # (E,) int base token ids of the ext table
        ext_table_sub: torch.Tensor,  # (E,) int their sub-ids
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits (B, L, V + E), hidden (B, L, D) after the final norm)."""
        with torch.no_grad():
            segment_bucket = segment_buckets(sample_ids, num_segments, segment, segment_rel_offset, segment_rel, span)
            mask = attention_mask(length, context, sample_ids, span)  # (B, L, L)
            row_valid = mask.any(dim=-1)  # (B, L): padding rows see nothing
            # rows that see nothing are opened up (finite softmax, no NaN in backward) and
            # their attention output zeroed in Attention, as the reference's masked_fill does
            open_mask = mask | ~row_valid[:, :, None]
            position = torch.arange(input.size(1), device=input.device).expand(input.size(0), -1)  # (B, L)

        hidden = self.input_embedding(input, input_sub)  # (B, L, D)
        bias = self.position_bias(position, position, segment_bucket)  # (B, H, L, L)
        attn_bias = bias.masked_fill(~open_mask[:, None], float("-inf"))
        if torch.is_autocast_enabled(input.device.type):
            # cast once here: a cast inside each layer would keep one copy per layer for backward
            attn_bias = attn_bias.to(torch.get_autocast_dtype(input.device.type))
        hidden = self.encoder(hidden, attn_bias, row_valid)

        ext_table = self.input_embedding(ext_table_ids, ext_table_sub)  # (E, D)
        logits = self.input_embedding.projection(hidden, ext_table)  # (B, L, V + E)
        return logits, hidden

    @torch.no_grad()
    def inference(
        self,
        input: torch.Tensor,  # (N, Lq) int new token ids
        input_sub: torch.Tensor,  # (N, Lq) int
        position: torch.Tensor,  # (N, Lq) int position of each new token (within its segment for answers)
        context: torch.Tensor,  # (N, Lq) bool
        sample_ids: torch.Tensor,  # (N, Lq) int
        num_segments: torch.Tensor,  # (N, Lq) int; 0 marks padding (never seen as a key)
        segment: torch.Tensor,  # (N, Lq) int
        segment_rel_offset: torch.Tensor,  # (N, Lq) int
        segment_rel: torch.Tensor,  # (N, S) int
        ext_table_ids: torch.Tensor,  # (E,) int
        ext_table_sub: torch.Tensor,  # (E,) int
        past_key_values: KVCache | None = None,
        capacity: int = 0,
        feed_step: torch.Tensor | None = None,  # (N, Lq) int: the call that fed each token
        logits: bool = True,
    ) -> tuple[torch.Tensor | None, torch.Tensor, KVCache]:
        """Incremental decoding with a key/value cache, CPM-Bee's `CPMBeeTorch.inference`.

        The new tokens attend over every token in `past_key_values` plus themselves: a key is
        seen when it is context, or earlier-or-equal by `position` for a non-context query;
        in-context samples (id > 0) see only themselves; keys whose `num_segments` is 0
        (left padding) are never seen. Segment buckets pair the query's sample layout
        (`segment * num_segments + key segment + segment_rel_offset`) with `segment_rel`.
        Without `past_key_values` a cache of `capacity` columns (at least Lq) is started.
        A token never sees tokens fed after it: `feed_step` numbers the call that fed each
        token (default: this call's number, so within one call the rule is void and a cached
        step sees everything before it); giving it lets one call recompute a whole decoding
        (prompt 0, the t-th generated token t) exactly as the cached steps saw it.
        Returns (logits (N, Lq, V + E), or None when `logits` is False (a prompt whose
        predictions nobody reads: the vocabulary projection is most of a small model's
        work), hidden (N, Lq, D), the cache, now holding these tokens).
        """
        batch, len_q = input.shape
        cache = past_key_values
        if cache is None:
            cache = KVCache.empty(self, batch, max(capacity, len_q), input.device)
        start = cache.filled
        if feed_step is None:
            feed_step = torch.full_like(input, cache.calls, dtype=torch.int32)
        cache.reserve(len_q)
        cache.append(position=position, context=context, sample_ids=sample_ids, num_segments=num_segments,
                     segment=segment, feed_step=feed_step)  # fmt: skip
        cache.calls += 1
        end = cache.filled
        keys = {name: getattr(cache, name)[:, :end] for name in KEY_FIELDS}

        same_sample = sample_ids[:, :, None] == keys["sample_ids"][:, None, :]  # (N, Lq, Lk)
        index = segment[:, :, None] * num_segments[:, :, None] + keys["segment"][:, None, :] + segment_rel_offset[:, :, None]
        index = index.masked_fill(~same_sample, 0)
        segment_bucket = torch.gather(segment_rel, 1, index.view(batch, len_q * end).long()).view(batch, len_q, end)
        segment_bucket = segment_bucket.masked_fill(~same_sample, 1)
        causal = keys["position"][:, None, :] <= position[:, :, None]
        mask = keys["context"][:, None, :].bool() | (~context[:, :, None].bool() & causal)
        mask &= (sample_ids[:, :, None] == 0) | same_sample
        mask &= (keys["num_segments"] != 0)[:, None, :]
        mask &= keys["feed_step"][:, None, :] <= feed_step[:, :, None]
        row_valid = mask.any(dim=-1)  # (N, Lq)
        open_mask = mask | ~row_valid[:, :, None]

        hidden = self.input_embedding(input, input_sub)  # (N, Lq, D)
        bias = self.position_bias(position, keys["position"], segment_bucket)  # (N, H, Lq, Lk)
        attn_bias = bias.masked_fill(~open_mask[:, None], float("-inf"))
        for layer, kv in zip(self.encoder.layers, cache.layers):
            hidden = layer.forward_cached(hidden, attn_bias, row_valid, kv, start)
        hidden = self.encoder.output_layernorm(hidden)
        if not logits:
            return None, hidden, cache
        ext_table = self.input_embedding(ext_table_ids, ext_table_sub)  # (E, D)
        return self.input_embedding.projection(hidden, ext_table), hidden, cache  # (N, Lq, V + E)


# what a cache keeps of every key besides its keys and values (all (N, C) int/bool tensors)
KEY_FIELDS = ("position", "context", "sample_ids", "num_segments", "segment", "feed_step")


@dataclass
class KVCache:
    """Keys, values and key metadata of the tokens decoded so far, for `CPMBee.inference`.

    Preallocated to a capacity C (grown by doubling when a step needs more), so a step
    writes its columns instead of concatenating: rows are sequences (N), columns tokens.
    `reorder` follows beam search (rows picked and repeated).
    """

    layers: list[LayerKV | None]  # one per encoder layer; None where attention is pruned
    position: torch.Tensor  # (N, C) int
    context: torch.Tensor  # (N, C) bool
    sample_ids: torch.Tensor  # (N, C) int
    num_segments: torch.Tensor  # (N, C) int; 0 = padding, never attended to
    segment: torch.Tensor  # (N, C) int
    feed_step: torch.Tensor  # (N, C) int: the `inference` call that fed the token
    filled: int = 0
    calls: int = 0

    @classmethod
    def empty(cls, model: CPMBee, batch: int, capacity: int, device: torch.device) -> KVCache:
        config = model.config
        dtype = model.input_embedding.weight.dtype
        shape = (batch, config.num_heads, capacity, config.dim_head)
        layers = [
            None if layer.self_att is None
            else LayerKV(torch.empty(shape, dtype=dtype, device=device), torch.empty(shape, dtype=dtype, device=device))
            for layer in model.encoder.layers
        ]  # fmt: skip
        meta = {name: torch.zeros(batch, capacity, dtype=torch.int32, device=device) for name in KEY_FIELDS}
        meta["context"] = meta["context"].bool()
        return cls(layers=layers, **meta)

    @property
    def capacity(self) -> int:
        return self.position.size(1)

    def reserve(self, extra: int) -> None:
        """Make room for `extra` more columns (doubling the capacity when short)."""
        needed = self.filled + extra
        if needed <= self.capacity:
            return
        grown = max(needed, 2 * self.capacity)

        def widen(t: torch.Tensor, dim: int) -> torch.Tensor:
            shape = list(t.shape)
            shape[dim] = grown - t.size(dim)
            return torch.cat([t, t.new_zeros(shape)], dim=dim)

        for kv in self.layers:
            if kv is not None:
                kv.k, kv.v = widen(kv.k, 2), widen(kv.v, 2)
        for name in KEY_FIELDS:
            setattr(self, name, widen(getattr(self, name), 1))

    def append(self, **columns: torch.Tensor) -> None:
        """Write the new tokens' metadata (each (N, Lq)) after the filled columns; the layers
        write their keys and values there during the same forward."""
        width = next(iter(columns.values())).size(1)
        for name in KEY_FIELDS:
            getattr(self, name)[:, self.filled : self.filled + width] = columns[name]
        self.filled += width

    def reorder(self, index: torch.Tensor, shared_columns: int = 0) -> None:
        """Keep rows `index` (a (N',) long tensor; rows may repeat), in place.

        `shared_columns` C0 > 0 says that row `index[r]` holds the same first C0 columns as
        row r already does (beam search: the hypotheses of one sample share its prompt and
        are reordered among themselves): only the columns after them are copied, which for
        a long prompt is most of a step's cache traffic saved."""
        end = self.filled
        if shared_columns > 0 and index.numel() == self.position.size(0):
            for kv in self.layers:
                if kv is not None:
                    _take_columns(kv.k, index, shared_columns, end, 2)
                    _take_columns(kv.v, index, shared_columns, end, 2)
            for name in KEY_FIELDS:
                _take_columns(getattr(self, name), index, shared_columns, end, 1)
            return
        for kv in self.layers:
            if kv is not None:
                kv.k, kv.v = _take_rows(kv.k, index, end, 2), _take_rows(kv.v, index, end, 2)
        for name in KEY_FIELDS:
            setattr(self, name, _take_rows(getattr(self, name), index, end, 1))


def _take_columns(t: torch.Tensor, index: torch.Tensor, start: int, end: int, dim: int) -> None:
    # rows `index` of columns [start, end) written over every row's columns there (in place;
    # index_select copies the source first, so rows may read what is overwritten)
    if end > start:
        t.narrow(dim, start, end - start).copy_(t.narrow(dim, start, end - start).index_select(0, index))


def _take_rows(t: torch.Tensor, index: torch.Tensor, end: int, dim: int) -> torch.Tensor:
    # only the filled columns are copied; the rest of the capacity stays uninitialised
    out = t.new_empty((index.numel(), *t.shape[1:])) if index.numel() != t.size(0) else torch.empty_like(t)
    src = t.narrow(dim, 0, end).index_select(0, index)
    out.narrow(dim, 0, end).copy_(src)
    return out


def segment_buckets(
    sample_ids: torch.Tensor,
    num_segments: torch.Tensor,
    segment: torch.Tensor,
    segment_rel_offset: torch.Tensor,
    segment_rel: torch.Tensor,
    span: torch.Tensor,
) -> torch.Tensor:
    """Segment-relation bucket of every (query, key) pair: (B, L, L) int.

    Within one sample and span it is `segment_rel[offset_q + seg_q * num_segments_q + seg_k]`
    (0 = same segment, which BucketPositionBias turns into a relative-position bucket);
    across samples or spans it is 1, the bucket CPM-Bee keeps for in-context samples.
    """
    batch, seqlen = segment.shape
    same_group = (sample_ids[:, :, None] == sample_ids[:, None, :]) & (span[:, :, None] == span[:, None, :])
    index = segment[:, :, None] * num_segments[:, :, None] + segment[:, None, :] + segment_rel_offset[:, :, None]
    index = index.masked_fill(~same_group, 0)  # keep gather in range where the value is unused
    buckets = torch.gather(segment_rel, 1, index.view(batch, seqlen * seqlen).long()).view(batch, seqlen, seqlen)
    return buckets.masked_fill(~same_group, 1)


def attention_mask(
    length: torch.Tensor, context: torch.Tensor, sample_ids: torch.Tensor, span: torch.Tensor
) -> torch.Tensor:
    """Which keys each query may see: (B, L, L) bool, [b, q, k].

    Context keys are seen by every query and other keys causally; an in-context sample's
    tokens see only their own sample (the main sample, id 0, sees all of its span); no
    token sees across spans; nothing at or after `length` sees or is seen.
    """
    batch, seqlen = context.shape
    positions = torch.arange(seqlen, device=context.device)
    causal = positions[None, :] <= positions[:, None]  # (L, L) [q, k]
    mask = context[:, None, :] | (~context[:, :, None] & causal)
    mask &= (sample_ids[:, :, None] == 0) | (sample_ids[:, :, None] == sample_ids[:, None, :])
    mask &= span[:, :, None] == span[:, None, :]
    valid = positions[None, :] < length[:, None]  # (B, L)
    return mask & valid[:, :, None] & valid[:, None, :]

