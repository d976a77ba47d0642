"""One decoding step of a batch of rows (hypotheses), with or without the key/value cache.

Rows are sequences being decoded: `row_sample[r]` is the batch sample row r continues (beam
search keeps `beam_size` rows per sample). Generated tokens are fed as CPM-Bee's decoder
feeds them: context, main sample (id 0), the main sample's segment layout, the answer
segment's id and a position counted from 0 at the segment's `<s>`.

With the cache the prompt runs once per sample (not once per beam) and each step runs one
token per row; without it every step recomputes the prompt and all generated tokens
(`use_cache=False`: the reference point that proves the cache changes nothing).
"""

from __future__ import annotations

import torch

from trainer.generation.prompt import PROMPT_KEYS, Batch
from trainer.model import CPMBee, KVCache


class Stepper:
    """Feeds one token per row and returns the next-token logits (float32)."""

    def __init__(self, model: CPMBee, batch: Batch, use_cache: bool = True, max_steps: int = 0) -> None:
        self.model, self.batch, self.use_cache = model, batch, use_cache
        self.max_steps = max_steps
        self.device = batch.segment_rel.device
        self.row_sample = torch.arange(batch.size, device=self.device)
        self.cache: KVCache | None = None
        self.prompt_columns = 0  # cache columns holding the prompt (the same for all rows of a sample)
        self.fed = torch.zeros((batch.size, 0, 4), dtype=torch.int32, device=self.device)  # token, sub, position, segment

    def start(self, rows_per_sample: int) -> None:
        """Run the prompts (with the cache) and give every sample `rows_per_sample` rows."""
        batch = self.batch
        if self.use_cache:
            prompt = batch.prompt
            _, _, self.cache = self.model.inference(
                *(prompt[key] for key in PROMPT_KEYS), batch.segment_rel, batch.ext_table_ids, batch.ext_table_sub,
                capacity=prompt["input"].size(1) + self.max_steps + 1, logits=False,
            )  # fmt: skip
            self.prompt_columns = self.cache.filled
        self.reorder(torch.arange(batch.size, device=self.device).repeat_interleave(rows_per_sample))

    def reorder(self, rows: torch.Tensor) -> None:
        """Continue rows `rows` (indices into the current rows; may repeat)."""
        row_sample = self.row_sample.index_select(0, rows)
        if self.cache is not None:
            # a row that keeps its sample keeps that sample's prompt columns: only the generated
            # ones move (beam search between samples leaving the batch)
            same = row_sample.numel() == self.row_sample.numel() and bool(torch.equal(row_sample, self.row_sample))
            self.cache.reorder(rows, shared_columns=self.prompt_columns if same else 0)
        self.row_sample = row_sample
        self.fed = self.fed.index_select(0, rows)

    @torch.no_grad()
    def step(self, token: torch.Tensor, sub: torch.Tensor, position: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
        """Feed (N,) tokens with their sub-ids, positions and answer segments; returns (N, V + E)
        float32 logits, V the tokenizer's vocabulary size."""
        batch, rows = self.batch, self.row_sample
        new = torch.stack([token, sub, position, segment], dim=-1).to(torch.int32)[:, None, :]  # (N, 1, 4)
        self.fed = torch.cat([self.fed, new], dim=1)
        n = rows.numel()
        generated = {
            "input": new[..., 0], "input_sub": new[..., 1], "position": new[..., 2], "segment": new[..., 3],
            "context": torch.ones((n, 1), dtype=torch.bool, device=self.device),
            "sample_ids": torch.zeros((n, 1), dtype=torch.int32, device=self.device),
            "num_segments": batch.num_segments.index_select(0, rows)[:, None],
            "segment_rel_offset": torch.zeros((n, 1), dtype=torch.int32, device=self.device),
        }  # fmt: skip
        segment_rel = batch.segment_rel.index_select(0, rows)
        if self.use_cache:
            columns, past = generated, self.cache
        else:
            fed = self.fed
            generated.update(input=fed[..., 0], input_sub=fed[..., 1], position=fed[..., 2], segment=fed[..., 3])
            steps = fed.size(1)
            for key in ("context", "sample_ids", "num_segments", "segment_rel_offset"):
                generated[key] = generated[key].expand(n, steps)
            columns = {
                key: torch.cat([batch.prompt[key].index_select(0, rows), generated[key]], dim=1) for key in PROMPT_KEYS
            }
            past = None
            # the prompt was fed first, then one generated token per step: none sees a later one
            width = batch.prompt["input"].size(1)
            feed_step = torch.cat([torch.zeros(width, dtype=torch.int32), torch.arange(1, steps + 1, dtype=torch.int32)])
            feed_step = feed_step.to(self.device).expand(n, -1)
        logits, hidden, cache = self.model.inference(
            *(columns[key] for key in PROMPT_KEYS), segment_rel, batch.ext_table_ids, batch.ext_table_sub,
            past_key_values=past, feed_step=None if self.use_cache else feed_step, logits=self.use_cache,
        )  # fmt: skip
        if self.use_cache:
            self.cache = cache
        else:  # only the last position's prediction is read
            embedding = self.model.input_embedding
            logits = embedding.projection(hidden[:, -1:], embedding(batch.ext_table_ids, batch.ext_table_sub))
        logits = logits[:, -1, :].float()
        vocab, model_vocab = batch.banned.size(1) - batch.ext_table_ids.numel(), self.model.config.vocab_size
        if model_vocab != vocab:
            # rows past the tokenizer's vocabulary are no token: ext entries are numbered from
            # the tokenizer's size (as CPM-Bee does, where both sizes are equal)
            logits = torch.cat([logits[:, :vocab], logits[:, model_vocab:]], dim=1)
        return logits

    def fed_tokens(self, window: int | None) -> torch.Tensor:
        """(N, T) the token ids fed so far (the last `window` of them when set)."""
        tokens = self.fed[..., 0]
        return tokens[:, -window:] if window else tokens
