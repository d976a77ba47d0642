"""Structured samples in, model inputs out, and answers back into the samples.

A sample is CPM-Bee's: a dict whose top-level `<ans>` is an empty string, or a dict tree of
named slots (`{"<mask_0>": "", "<mask_1>": ""}`). Each leaf under `<ans>` becomes a
placeholder `<ans_N>` (N from 1, in tree order), the sample is converted by
`tokenization.convert.convert_data_to_id` (no answer shuffling, depth cap 8, as CPM-Bee's
generation does), and the predicted segments are cut out of the prompt: what is left is all
context, and the decoder writes each answer into its segment in turn. In-context samples
(optional, complete samples with their answers) follow the main sample with sample ids 1, 2, ...

Special tokens of the batch that the vocabulary lacks (`<mask_3>`, `<option_2>`) share one
ext table; each sample may only produce its own (and `<unk>` only when its text had unknown
spans), exactly as CPM-Bee's `CPMBeeGeneration` does.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tokenization.convert import ANSWER_KEY, SampleError, convert_data_to_id
from tokenization.tokenizer import CPMBeeTokenizer

GENERATION_MAX_DEPTH = 8  # CPM-Bee's generation converts with max_depth=8 (training uses 16)
PROMPT_KEYS = ("input", "input_sub", "position", "context", "sample_ids", "num_segments", "segment", "segment_rel_offset")


@dataclass
class Prompt:
    """One sample ready to decode (numpy arrays of the prompt, all context)."""

    columns: dict[str, np.ndarray]  # PROMPT_KEYS -> (L,) int32 (context as int8)
    segment_rel: np.ndarray  # (S,) int32, the main sample's block first
    num_segments: int  # of the main sample: what the generated tokens use
    predict_segments: list[tuple[int, int]]  # (segment id, answer number) in order
    answer_paths: list[list[str]]  # answer number - 1 -> key path under <ans> ([] for a string answer)
    ext_table: dict[int, str]  # ext id (the sample's own numbering) -> token text
    token_id_table: dict[str, dict[int, int]]  # family token -> {ext id: sub id}


def _put_placeholders(node: Any, path: list[str], paths: list[list[str]]) -> Any:
    if isinstance(node, dict):
        return {key: _put_placeholders(value, path + [key], paths) for key, value in node.items()}
    paths.append(path)
    return f"<ans_{len(paths)}>"


def prepare(tokenizer: CPMBeeTokenizer, data: Any, in_context_samples: list[Any] = (), where: str = "sample") -> Prompt:
    """Convert one sample (and its in-context samples) into a `Prompt`.

    Raises SampleError naming `where` when the sample is not a dict with an `<ans>` key, or
    when it cannot be converted (bad key/value types, syntax errors in the text)."""
    if not isinstance(data, dict) or ANSWER_KEY not in data:
        raise SampleError(f"{where}: needs a top-level {ANSWER_KEY} key (an empty string or a dict of slots) to fill")
    paths: list[list[str]] = []
    with_slots = dict(data)
    with_slots[ANSWER_KEY] = _put_placeholders(data[ANSWER_KEY], [], paths)
    try:
        ids, subs, context, segments, segment_rel, n_segments, states = convert_data_to_id(
            tokenizer, with_slots, shuffle_answer=False, max_depth=GENERATION_MAX_DEPTH
        )
    except SampleError as error:
        raise SampleError(f"{where}: {error}") from error

    ans_id = tokenizer.encoder[ANSWER_KEY]
    sub_to_answer = {
        sub: int(states["ext_table"][ext_id][len("<ans_") : -1])
        for ext_id, sub in states["token_id_table"].get(ANSWER_KEY, {}).items()
        if states["ext_table"][ext_id].startswith("<ans_")
    }
    predicted = context == 0
    predict_segments = [
        (int(segments[i]), sub_to_answer[int(subs[i])]) for i in np.flatnonzero(predicted & (ids == ans_id))
    ]
    if not predict_segments:
        raise SampleError(f"{where}: no answer to predict")
    keep = ~predicted
    length = int(keep.sum())
    columns = {
        "input": ids[keep],
        "input_sub": subs[keep],
        "context": np.ones(length, dtype=np.int8),
        "segment": segments[keep].astype(np.int32),
        "sample_ids": np.zeros(length, dtype=np.int32),
        "segment_rel_offset": np.zeros(length, dtype=np.int32),
        "num_segments": np.full(length, n_segments, dtype=np.int32),
    }
    rels = [segment_rel]
    offset = segment_rel.shape[0]
    for k, sample in enumerate(in_context_samples, start=1):
        try:
            s_ids, s_subs, _, s_segments, s_rel, s_n, states = convert_data_to_id(
                tokenizer, sample, states, shuffle_answer=False, max_depth=GENERATION_MAX_DEPTH
            )
        except SampleError as error:
            raise SampleError(f"{where}, in-context sample {k}: {error}") from error
        n = s_ids.shape[0]
        extra = {
            "input": s_ids, "input_sub": s_subs, "context": np.ones(n, dtype=np.int8),
            "segment": s_segments.astype(np.int32), "sample_ids": np.full(n, k, dtype=np.int32),
            "segment_rel_offset": np.full(n, offset, dtype=np.int32), "num_segments": np.full(n, s_n, dtype=np.int32),
        }  # fmt: skip
        columns = {key: np.concatenate([columns[key], extra[key]]) for key in columns}
        rels.append(s_rel)
        offset += s_rel.shape[0]
    columns["position"] = np.arange(columns["input"].shape[0], dtype=np.int32)
    return Prompt(
        columns={key: columns[key].astype(np.int8 if key == "context" else np.int32) for key in PROMPT_KEYS},
        segment_rel=np.concatenate(rels).astype(np.int32),
        num_segments=n_segments,
        predict_segments=predict_segments,
        answer_paths=paths,
        ext_table=states["ext_table"],
        token_id_table=states["token_id_table"],
    )


@dataclass
class Batch:
    """Prompts left-padded into one batch, the batch's shared ext table and per-sample
    decoding facts. Tensors are on the model's device."""

    prompt: dict[str, torch.Tensor]  # PROMPT_KEYS -> (B, L); padding has num_segments 0
    segment_rel: torch.Tensor  # (B, S)
    ext_table_ids: torch.Tensor  # (E,) base token ids
    ext_table_sub: torch.Tensor  # (E,) sub ids
    num_segments: torch.Tensor  # (B,) the main sample's segment count
    banned: torch.Tensor  # (B, V + E) bool: tokens the sample may not produce
    prompts: list[Prompt]
    decode_tables: list[dict[int, str]] = field(default_factory=list)  # model id -> text, per sample

    @property
    def size(self) -> int:
        return len(self.prompts)


def build_batch(tokenizer: CPMBeeTokenizer, prompts: list[Prompt], device: torch.device) -> Batch:
    """Left-pad the prompts (zeros) and build the batch ext table (CPM-Bee's `_process_list`)."""
    ext_index: dict[tuple[int, int], int] = {}
    ext_ids: list[int] = []
    ext_subs: list[int] = []
    decode_tables = []
    for prompt in prompts:
        table: dict[int, str] = {}
        for family, members in prompt.token_id_table.items():
            if family == ANSWER_KEY:
                continue
            family_id = tokenizer.encoder[family]
            for ext_id, sub in members.items():
                if sub > 0:
                    key = (family_id, sub)
                    if key not in ext_index:
                        ext_index[key] = tokenizer.vocab_size + len(ext_ids)
                        ext_ids.append(family_id)
                        ext_subs.append(sub)
                    table[ext_index[key]] = prompt.ext_table[ext_id]
                else:
                    table[family_id] = prompt.ext_table[ext_id]
        decode_tables.append(table)

    batch, width = len(prompts), max(p.columns["input"].shape[0] for p in prompts)
    padded = {key: np.zeros((batch, width), dtype=np.int32) for key in PROMPT_KEYS}
    for row, prompt in enumerate(prompts):
        for key in PROMPT_KEYS:
            values = prompt.columns[key]
            padded[key][row, width - values.shape[0] :] = values
    rel_width = max(p.segment_rel.shape[0] for p in prompts)
    segment_rel = np.zeros((batch, rel_width), dtype=np.int32)
    for row, prompt in enumerate(prompts):
        segment_rel[row, : prompt.segment_rel.shape[0]] = prompt.segment_rel

    vocab_ext = tokenizer.vocab_size + len(ext_ids)
    banned = np.zeros((batch, vocab_ext), dtype=bool)
    banned[:, tokenizer.vocab_size :] = True
    for row, table in enumerate(decode_tables):
        if tokenizer.unk_id not in table:
            banned[row, tokenizer.unk_id] = True  # <unk> only where the sample had unknown text
        for ext_id in table:
            if ext_id >= tokenizer.vocab_size:
                banned[row, ext_id] = False

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(device)

    prompt_tensors = {key: tensor(value) for key, value in padded.items()}
    prompt_tensors["context"] = prompt_tensors["context"].bool()
    return Batch(
        prompt=prompt_tensors,
        segment_rel=tensor(segment_rel),
        ext_table_ids=torch.tensor(ext_ids, dtype=torch.int32, device=device),
        ext_table_sub=torch.tensor(ext_subs, dtype=torch.int32, device=device),
        num_segments=torch.tensor([p.num_segments for p in prompts], dtype=torch.int32, device=device),
        banned=tensor(banned),
        prompts=prompts,
        decode_tables=decode_tables,
    )


def fill_answers(
    tokenizer: CPMBeeTokenizer, data: dict, prompt: Prompt, decode_table: dict[int, str], tokens: list[tuple[int, int]]
) -> dict:
    """Write the generated (token id, answer number) pairs into `data` in place: each answer's
    tokens (a final `</s>` dropped) decoded to text at its path under `<ans>`; an answer the
    decoder never reached becomes None. Returns `data`."""
    by_answer: dict[int, list[int]] = {}
    for token, answer in tokens:
        by_answer.setdefault(answer, []).append(token)
    # a fresh tree (as CPM-Bee's placeholder tree is): the caller's answer dicts stay as they were
    tree = copy.deepcopy(data[ANSWER_KEY])
    for number, path in enumerate(prompt.answer_paths, start=1):
        ids = by_answer.get(number)
        text = None
        if ids is not None:
            if ids and ids[-1] == tokenizer.eos_id:
                ids = ids[:-1]
            text = tokenizer.decode(ids, decode_table)
        if not path:
            tree = text
            continue
        node = tree
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = text
    data[ANSWER_KEY] = tree
    return data
