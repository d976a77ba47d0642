"""One training instance: a sample plus its in-context samples, as the id arrays a packed row holds.

CPM-Bee trains on instances made of one sample followed by zero or more in-context samples
of the same dataset. The sample is converted to ids with `tokenization.convert_data_to_id`;
each in-context sample reuses the ext table of the ones before it, is all context (nothing
predicted in it), carries sample id `i + 1`, and points at its own block of `segment_rel`
through `segment_rel_offset`. These are the reference's rules (`build_instance` in
`cpm_live/training_tasks/bee/pretrain.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tokenization import TokenRow, convert_data_to_id

class SampleRejected(ValueError):
    """A sample that cannot become an instance; `reason` is a snake_case counter name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Instance:
    """The arrays of one instance, all of length `n` (its tokens) except `segment_rel`.

    `segment_rel` is the concatenation of each sample's flattened (num_segments,
    num_segments) bucket matrix; `segment_rel_offset[t]` is where token t's matrix starts.
    """

    task_name: str
    input_ids: NDArray[np.int32]  # (n,) token ids; ext tokens carry their base special id
    input_sub: NDArray[np.int32]  # (n,) which ext token of that base, 0 for plain tokens
    context: NDArray[np.int8]  # (n,) 1 = given, 0 = predicted
    segment_ids: NDArray[np.int32]  # (n,) segment of the token within its sample
    segment_rel_offset: NDArray[np.int32]  # (n,)
    segment_rel: NDArray[np.int32]  # (sum of num_segments**2 over the samples,)
    sample_ids: NDArray[np.int32]  # (n,) 0 = the sample, i = the i-th in-context sample
    num_segments: NDArray[np.int32]  # (n,) number of segments of the token's sample
    # where each of its samples was read: (dataset identity, data file, block, offset); the
    # sample first, then its in-context samples. Empty when not known (built from plain data).
    origins: tuple[tuple[str, str, int, int], ...] = ()

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def num_samples(self) -> int:
        """The sample plus the in-context samples it holds."""
        return int(self.sample_ids.max()) + 1 if len(self) else 0

    def to_state(self) -> dict[str, Any]:
        """A picklable dict of plain values and arrays, for checkpoints."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Instance:
        return cls(**state)


def _convert(tokenizer: Any, data: Any, ext_states: Any, max_depth: int, rng: np.random.Generator | None, where: str):
    if isinstance(data, TokenRow):  # converted ahead of time (a token shard row)
        return data.converted(ext_states, tokenizer.vocab_size)
    try:
        return convert_data_to_id(
            tokenizer, data, ext_states, shuffle_answer=rng is not None, max_depth=max_depth, rng=rng
        )
    except (ValueError, TypeError, AssertionError, KeyError) as error:
        raise SampleRejected("unconvertible", f"{where}: cannot convert to ids: {error}") from None


def build_instance(
    tokenizer: Any,
    sample: Any,
    task_name: str,
    incontext: Iterable[Any] = (),
    *,
    max_length: int,
    max_depth: int = 16,
    shuffle_rng: np.random.Generator | None = None,
) -> Instance:
    """Convert `sample` and as many `incontext` samples as fit in `max_length` tokens.

    A sample may also be a `tokenization.TokenRow` (already converted, from a token shard).

    `incontext` is consumed lazily, as the reference reads its in-context samples: the next
    one is taken only while the instance is shorter than `max_length`, and the first one that
    does not fit (or cannot be converted) ends the instance, consumed but unused.
    The fields of answers are visited in an order drawn from `shuffle_rng` when given (CPM-Bee
    always shuffles, from numpy's global generator); without it the conversion is deterministic.

    Raises SampleRejected("too_long") when the sample alone exceeds `max_length`, and
    SampleRejected("unconvertible") when it is not valid CPM-Bee input (bad `<` escapes,
    non-string leaves).
    """
    ids, subs, context, segments, segment_rel, n_segments, ext_states = _convert(
        tokenizer, sample, None, max_depth, shuffle_rng, "sample"
    )
    if ids.shape[0] > max_length:
        raise SampleRejected("too_long", f"sample has {ids.shape[0]} tokens, more than max_length={max_length}")

    # Pieces of each array, concatenated once at the end.
    parts: dict[str, list[NDArray]] = {
        "input_ids": [ids],
        "input_sub": [subs],
        "context": [context.astype(np.int8)],
        "segment_ids": [segments],
        "segment_rel_offset": [np.zeros(ids.shape, dtype=np.int32)],
        "segment_rel": [segment_rel],
        "sample_ids": [np.zeros(ids.shape, dtype=np.int32)],
        "num_segments": [np.full(ids.shape, n_segments, dtype=np.int32)],
    }
    length = int(ids.shape[0])
    rel_length = int(segment_rel.shape[0])
    samples = iter(incontext)
    sample_id = 1
    while length < max_length:
        try:
            extra = next(samples)
        except StopIteration:
            break
        try:
            ids, subs, _, segments, rel, n_segments, next_ext_states = _convert(
                tokenizer, extra, ext_states, max_depth, shuffle_rng, f"in-context sample {sample_id}"
            )
        except SampleRejected:
            break
        n = int(ids.shape[0])
        if length + n > max_length:
            break
        ext_states = next_ext_states
        parts["input_ids"].append(ids)
        parts["input_sub"].append(subs)
        parts["context"].append(np.ones(n, dtype=np.int8))  # in-context samples are all given
        parts["segment_ids"].append(segments)
        parts["segment_rel_offset"].append(np.full(n, rel_length, dtype=np.int32))
        parts["segment_rel"].append(rel)
        parts["sample_ids"].append(np.full(n, sample_id, dtype=np.int32))
        parts["num_segments"].append(np.full(n, n_segments, dtype=np.int32))
        length += n
        rel_length += int(rel.shape[0])
        sample_id += 1

    arrays = {name: np.concatenate(pieces).astype(_DTYPES[name], copy=False) for name, pieces in parts.items()}
    return Instance(task_name=task_name, **arrays)


_DTYPES = {
    "input_ids": np.int32,
    "input_sub": np.int32,
    "context": np.int8,
    "segment_ids": np.int32,
    "segment_rel_offset": np.int32,
    "segment_rel": np.int32,
    "sample_ids": np.int32,
    "num_segments": np.int32,
}
