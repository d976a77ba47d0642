"""Turn one structured CPM-Bee sample (a dict tree of strings) into model inputs.

Same outputs as CPM-Bee's `convert_data_to_id` (identical when `shuffle_answer=False`):

- Segments are the tree's nodes in pre-order: segment 0 is `<root>`, then each key, then its
  value (a string leaf, or the keys of a nested dict). Each segment is `<s>` + its tokens,
  plus `</s>` unless it is a leaf under the top-level `<ans>` key: those leaves are what the
  model predicts (context 0); everything else is context (1).
- `segment_rel[x * n + y]` is the bucket of the tree path between segments x and y:
  with `up = depth(x) - depth(lca)`, `down = depth(y) - depth(lca)`, both capped at
  `max_depth - 1`, the bucket is `up * max_depth + down`, plus one when non-zero because
  bucket 1 is reserved for in-context samples. The diagonal is 0.
- A special token the vocabulary lacks (`<option_3>`) and an unknown span are looked up in the
  ext table; the id fed to the model is the family token (`<option>`, or `<unk>` for unknown
  text) and `id_subs` says which member of the family it is (0, 1, ... in order of appearance,
  shared through `prev_ext_states` across the samples of one packed sequence).

Randomness: with `shuffle_answer=True` the items of dicts under `<ans>` are visited in a random
order. The reference draws from NumPy's global RNG; here `rng` may be a `numpy.random.Generator`,
a `numpy.random.RandomState` (same draws as the reference for the same seed) or a
`random.Random`; None keeps the reference's global-RNG behaviour.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, TypedDict, Union

import numpy as np
from numpy.typing import NDArray

from schemas.special_tokens import is_special
from tokenization.tokenizer import CPMBeeTokenizer, TokenizeError

ANSWER_KEY = "<ans>"
ROOT_TOKEN = "<root>"
UNK_FAMILY = "<unk>"

Rng = Union[np.random.Generator, np.random.RandomState, random.Random, None]


class ExtStates(TypedDict):
    """Ext ids shared by the samples of one packed sequence.

    ext_table: ext id -> token text (special token or unknown span).
    token_id_table: family token (`<option>`, `<unk>`) -> {ext id: sub id}.
    """

    ext_table: dict[int, str]
    token_id_table: dict[str, dict[int, int]]


class SampleError(ValueError):
    """A sample that cannot be converted; the message names the key path (`$.options.<option_0>`)."""


@dataclass
class _Segment:
    text: str
    depth: int
    path: str  # where in the sample this text is, for error messages
    need_predict: bool
    parent: int  # segment id of the parent (-1 for the root)


def rel_to_bucket(n_up: int, n_down: int, max_depth: int) -> int:
    """Bucket of a (steps up, steps down) tree path; bucket 1 is reserved for in-context samples."""
    ret = n_up * max_depth + n_down
    return ret if ret == 0 else ret + 1


def _buckets(n_up: NDArray[np.int64], n_down: NDArray[np.int64], max_depth: int) -> NDArray[np.int64]:
    """`rel_to_bucket` over arrays."""
    ret = n_up * max_depth + n_down
    return ret + (ret != 0)


def _shuffled(items: list[tuple[Any, Any]], rng: Rng) -> list[tuple[Any, Any]]:
    if isinstance(rng, random.Random):
        order = list(range(len(items)))
        rng.shuffle(order)
    elif rng is None or isinstance(rng, np.random.RandomState):
        # Same call as the reference, so a RandomState (or the global one) gives its order.
        order = np.arange(len(items))
        (np.random if rng is None else rng).shuffle(order)
    else:
        order = rng.permutation(len(items))
    return [items[i] for i in order]


def _key_path(parent: str, key: str) -> str:
    return f"{parent}.{key}"


def _build_segments(data: Any, shuffle_answer: bool, rng: Rng) -> list[_Segment]:
    segments = [_Segment(ROOT_TOKEN, 0, "$", False, -1)]

    def visit(node: Any, parent: int, depth: int, path: str, need_predict: bool) -> None:
        if isinstance(node, dict):
            items = list(node.items())
            if need_predict and shuffle_answer:
                items = _shuffled(items, rng)
            for key, value in items:
                if not isinstance(key, str):
                    raise SampleError(f"{path}: key {key!r} is a {type(key).__name__}, not a str")
                key_path = _key_path(path, key)
                seg_id = len(segments)
                # Keys are context even under <ans>: only leaves are predicted.
                segments.append(_Segment(key, depth, key_path, False, parent))
                visit(value, seg_id, depth + 1, key_path,
                      need_predict or (depth == 1 and key == ANSWER_KEY))
        elif isinstance(node, str):
            segments.append(_Segment(node, depth, path, need_predict, parent))
        else:
            raise SampleError(
                f"{path}: value is a {type(node).__name__}, not a str or dict: {node!r:.80}"
            )

    visit(data, 0, 1, "$", False)
    return segments


def _segment_rel(segments: list[_Segment], max_depth: int) -> NDArray[np.int32]:
    n = len(segments)
    # paths[i]: segment ids from the root down to i; its length is depth(i) + 1.
    paths: list[list[int]] = []
    for i, seg in enumerate(segments):
        paths.append(paths[seg.parent] + [i] if seg.parent >= 0 else [i])
    width = max(len(p) for p in paths)
    anc = np.array([p + [-1] * (width - len(p)) for p in paths], dtype=np.int64)  # (n, width)
    depth = np.array([seg.depth for seg in segments], dtype=np.int64)
    cap = max_depth - 1
    rel = np.empty((n, n), dtype=np.int32)
    # Rows in blocks so that the (rows, n, width) comparison stays small for huge samples.
    block = max(1, 4_000_000 // (n * width))
    for lo in range(0, n, block):
        a = anc[lo : lo + block, None, :]  # (rows, 1, width)
        common = ((a == anc[None, :, :]) & (a >= 0)).sum(axis=2)  # (rows, n): depth(lca) + 1
        lca = common - 1
        up = np.minimum(depth[lo : lo + block, None] - lca, cap)
        down = np.minimum(depth[None, :] - lca, cap)
        rel[lo : lo + block] = _buckets(up, down, max_depth)
    return rel.reshape(-1)


def _family_token(token: str) -> str:
    if is_special(token):
        return "<{}>".format(token[1:-1].split("_", maxsplit=1)[0])
    return UNK_FAMILY


def count_answer_dicts(data: Any) -> int:
    """How many dicts are under the top-level `<ans>` key: the ones `shuffle_answer` reorders.
    A sample without any converts the same with and without shuffling."""
    if not isinstance(data, dict) or not isinstance(data.get(ANSWER_KEY), dict):
        return 0
    pending, count = [data[ANSWER_KEY]], 0
    while pending:
        node = pending.pop()
        count += 1
        pending.extend(value for value in node.values() if isinstance(value, dict))
    return count


def convert_data_to_id(
    tokenizer: CPMBeeTokenizer,
    data: Any,
    prev_ext_states: ExtStates | None = None,
    shuffle_answer: bool = True,
    max_depth: int = 16,
    *,
    rng: Rng = None,
    require_answer: bool = False,
    ext_positions: list[tuple[int, int]] | None = None,
) -> tuple[
    NDArray[np.int32], NDArray[np.int32], NDArray[np.int8], NDArray[np.int32],
    NDArray[np.int32], int, ExtStates,
]:
    """Convert one sample to CPM-Bee model inputs.

    Takes: the tokenizer; data, a str or a dict tree whose leaves are str (text already
    escaped); prev_ext_states from the previous sample of the same packed sequence (not
    modified); shuffle_answer and rng (see the module docstring); max_depth, the depth cap of
    segment buckets; require_answer, to refuse samples without a top-level `<ans>` key;
    ext_positions, a list to which (token position, ext id) of every ext token is appended
    (what a token shard keeps to continue the ext states later, `tokenization.token_rows`).
    Returns: (ids, id_subs, context, segments, segment_rel, num_segments, ext_states):
    per-token int32 ids and sub ids, int8 context flags (1 = given, 0 = predicted), int32
    segment index per token, the flattened num_segments x num_segments int32 bucket matrix,
    the number of segments and the ext states to pass to the next sample.
    Raises: SampleError naming the key path for a non-str leaf or key, a missing `<ans>` when
    required, a special token with no family token in the vocabulary, or a syntax error in
    the text (from the tokenizer).
    """
    if require_answer and not (isinstance(data, dict) and ANSWER_KEY in data):
        raise SampleError(f"$: the sample has no top-level {ANSWER_KEY} key, so nothing to predict")
    segments = _build_segments(data, shuffle_answer, rng)
    segment_rel = _segment_rel(segments, max_depth)

    if prev_ext_states is not None:
        ext_table: dict[int, str] = prev_ext_states["ext_table"]
        token_id_table = {k: dict(v) for k, v in prev_ext_states["token_id_table"].items()}
    else:
        ext_table = {}
        token_id_table = {}
    encoder = tokenizer.encoder
    bos, eos = tokenizer.bos_id, tokenizer.eos_id

    ids: list[int] = []
    id_subs: list[int] = []
    lengths: list[int] = []
    # Only ids at or above this can be in the ext table (new ext ids start at vocab_size).
    ext_floor = min(tokenizer.vocab_size, min(ext_table, default=tokenizer.vocab_size))
    for seg in segments:
        try:
            tokens, ext_table = tokenizer.encode(seg.text, ext_table)
        except TokenizeError as e:
            raise SampleError(f"{seg.path}: {e}") from e
        start = len(ids)
        ids.append(bos)
        if not tokens or max(tokens) < ext_floor:
            ids.extend(tokens)
        else:
            for idx in tokens:
                token = ext_table.get(idx)
                if token is None:
                    ids.append(idx)
                    continue
                family = _family_token(token)
                members = token_id_table.setdefault(family, {})
                sub = members.setdefault(idx, len(members))
                family_id = encoder.get(family)
                if family_id is None:
                    raise SampleError(
                        f"{seg.path}: special token {token} has no family token {family} in the vocabulary"
                    )
                ids.append(family_id)
                if ext_positions is not None:
                    ext_positions.append((len(ids) - 1, idx))
                id_subs.extend([0] * (len(ids) - 1 - len(id_subs)))
                id_subs.append(sub)
        if not seg.need_predict:
            ids.append(eos)
        lengths.append(len(ids) - start)
    id_subs.extend([0] * (len(ids) - len(id_subs)))

    counts = np.array(lengths, dtype=np.int64)
    segs = np.repeat(np.arange(len(segments), dtype=np.int32), counts)
    given = np.array([not seg.need_predict for seg in segments], dtype=np.int8)
    context = np.repeat(given, counts)
    states: ExtStates = {"ext_table": ext_table, "token_id_table": token_id_table}
    return (
        np.array(ids, dtype=np.int32),
        np.array(id_subs, dtype=np.int32),
        context,
        segs,
        segment_rel,
        len(segments),
        states,
    )
