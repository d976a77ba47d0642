"""convert_data_to_id: CPM-Bee's model inputs for a structured sample.

Expected values come from the reference implementation (golden/convert.json).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from tokenization import CPMBeeTokenizer, SampleError, convert_data_to_id, rel_to_bucket


def _states(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "ext_table": {int(k): v for k, v in obj["ext_table"]},
        "token_id_table": {f: {int(i): int(s) for i, s in m} for f, m in obj["token_id_table"].items()},
    }


def test_matches_reference_on_golden_samples(golden_tokenizer: CPMBeeTokenizer, golden_convert: list) -> None:
    for n, case in enumerate(golden_convert):
        prev = _states(case["prev"]) if "prev" in case else None
        if "error" in case:
            with pytest.raises(SampleError, match=r"^\$"):
                convert_data_to_id(golden_tokenizer, case["data"], prev, False, case["max_depth"])
            continue
        ids, subs, ctx, segs, rel, num, states = convert_data_to_id(
            golden_tokenizer, case["data"], prev, False, case["max_depth"]
        )
        assert (ids.dtype, subs.dtype, ctx.dtype, segs.dtype, rel.dtype) == (
            np.int32, np.int32, np.int8, np.int32, np.int32
        )
        assert ids.tolist() == case["ids"], n
        assert subs.tolist() == case["id_subs"], n
        assert ctx.tolist() == case["context"], n
        assert segs.tolist() == case["segments"], n
        assert rel.tolist() == case["segment_rel"], n
        assert num == case["num_segments"], n
        assert states == _states(case["states"]), n


def test_answer_leaves_are_predicted_without_eos(golden_tokenizer: CPMBeeTokenizer) -> None:
    tok = golden_tokenizer
    ids, _, ctx, segs, _, num, _ = convert_data_to_id(tok, {"q": "a", "<ans>": "b"}, shuffle_answer=False)
    a, b = tok.encoder["a"], tok.encoder["b"]
    # <root>, q, a, <ans>, b: every segment opens with <s>; only the predicted one has no </s>.
    assert ids.tolist() == [
        tok.bos_id, tok.encoder["<root>"], tok.eos_id,
        tok.bos_id, tok.encoder["q"], tok.eos_id,
        tok.bos_id, a, tok.eos_id,
        tok.bos_id, tok.encoder["<ans>"], tok.eos_id,
        tok.bos_id, b,
    ]
    assert ctx.tolist() == [1] * 12 + [0, 0]
    assert segs.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4] and num == 5


def test_segment_buckets_follow_the_tree_path(golden_tokenizer: CPMBeeTokenizer) -> None:
    max_depth = 4
    _, _, _, _, rel, num, _ = convert_data_to_id(
        golden_tokenizer, {"q": "a", "r": {"s": "t"}}, shuffle_answer=False, max_depth=max_depth
    )
    rel = rel.reshape(num, num)  # segments: 0 <root>, 1 q, 2 a, 3 r, 4 s, 5 t
    assert rel.diagonal().tolist() == [0] * num
    assert rel[2, 5] == rel_to_bucket(2, 3, max_depth) == 2 * 4 + 3 + 1  # a up to root, down to t
    assert rel[5, 2] == rel_to_bucket(3, 2, max_depth)
    assert rel[1, 0] == rel_to_bucket(1, 0, max_depth)
    assert rel[0, 5] == rel_to_bucket(0, 3, max_depth)
    assert rel_to_bucket(0, 0, max_depth) == 0  # bucket 1 never appears: reserved for in-context


def test_family_token_and_sub_ids_for_specials_and_unknown_spans(golden_tokenizer: CPMBeeTokenizer) -> None:
    tok = golden_tokenizer
    ids, subs, *_, states = convert_data_to_id(tok, {"q": "<option_2><option_7>☃<option_2>"}, shuffle_answer=False)
    option, unk = tok.encoder["<option>"], tok.encoder["<unk>"]
    assert ids[7:11].tolist() == [option, option, unk, option]  # after <root> and q segments
    assert subs[7:11].tolist() == [0, 1, 0, 0]
    assert states["token_id_table"] == {"<option>": {tok.vocab_size: 0, tok.vocab_size + 1: 1},
                                        "<unk>": {tok.vocab_size + 2: 0}}


def test_prev_ext_states_continue_numbering_and_are_not_modified(golden_tokenizer: CPMBeeTokenizer) -> None:
    tok = golden_tokenizer
    *_, first = convert_data_to_id(tok, {"q": "<option_2>"}, shuffle_answer=False)
    snapshot = {"ext_table": dict(first["ext_table"]),
                "token_id_table": {k: dict(v) for k, v in first["token_id_table"].items()}}
    _, subs, *_, second = convert_data_to_id(tok, {"q": "<option_5><option_2>"}, first, shuffle_answer=False)
    assert subs[7:9].tolist() == [1, 0]
    assert first == snapshot
    assert second["token_id_table"]["<option>"] == {tok.vocab_size: 0, tok.vocab_size + 1: 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"q": {"r": 3}}, r"^\$\.q\.r: value is a int"),
        ({"q": ["x"]}, r"^\$\.q: value is a list"),
        ({1: "x"}, r"^\$: key 1 is a int"),
        ({"q": {"r": "<foo_1>"}}, r"^\$\.q\.r: special token <foo_1> has no family token <foo>"),
        ({"q": "a<b"}, r"^\$\.q: unexpected end"),
        ({"a<b<c>": "x"}, r"^\$\.a<b<c>: invalid special token at pos 3"),
    ],
)
def test_invalid_samples_name_the_key(golden_tokenizer: CPMBeeTokenizer, data: Any, message: str) -> None:
    with pytest.raises(SampleError, match=message):
        convert_data_to_id(golden_tokenizer, data, shuffle_answer=False)


def test_require_answer_refuses_samples_without_ans(golden_tokenizer: CPMBeeTokenizer) -> None:
    with pytest.raises(SampleError, match=r"no top-level <ans> key"):
        convert_data_to_id(golden_tokenizer, {"q": "x"}, require_answer=True)
    convert_data_to_id(golden_tokenizer, {"q": "x", "<ans>": "y"}, require_answer=True)


ANSWERS = {"q": "x", "<ans>": {f"<option_{i}>": str(i) for i in range(6)}}


def _answer_order(tok: CPMBeeTokenizer, **kwargs: Any) -> list[int]:
    ids, *_ = convert_data_to_id(tok, ANSWERS, shuffle_answer=True, **kwargs)
    digits = {tok.encoder[str(i)]: i for i in range(6)}
    return [digits[i] for i in ids.tolist() if i in digits]


@pytest.mark.parametrize("make_rng", [lambda: random.Random(4), lambda: np.random.default_rng(4)])
def test_shuffle_answer_is_reproducible_with_an_explicit_rng(golden_tokenizer: CPMBeeTokenizer, make_rng) -> None:
    orders = {tuple(_answer_order(golden_tokenizer, rng=make_rng())) for _ in range(3)}
    assert len(orders) == 1
    assert sorted(next(iter(orders))) == list(range(6))


def test_random_state_gives_the_global_rng_order_of_the_reference(golden_tokenizer: CPMBeeTokenizer) -> None:
    np.random.seed(11)
    global_order = _answer_order(golden_tokenizer)
    assert _answer_order(golden_tokenizer, rng=np.random.RandomState(11)) == global_order


def test_only_answer_subtrees_are_shuffled(golden_tokenizer: CPMBeeTokenizer) -> None:
    data = {f"k{i}": str(i) for i in range(6)}
    unshuffled = convert_data_to_id(golden_tokenizer, data, shuffle_answer=False)[0]
    shuffled = convert_data_to_id(golden_tokenizer, data, shuffle_answer=True, rng=random.Random(1))[0]
    assert shuffled.tolist() == unshuffled.tolist()
