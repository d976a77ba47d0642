"""Specification of trainer.generation: CPM-Bee's beam search API, sampling, the KV cache.

Equality with CPM-Bee's own CPMBeeBeamSearch is checked by
tests/benchmarks/compare_generation_reference.py (needs the reference checkout); here the
decoder is checked against itself without the cache, against a full forward of the model,
and for the answer-filling and logit-processing rules CPM-Bee's generator has.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from schemas.model_config import preset
from tokenization.convert import SampleError
from tokenization.tokenizer import CPMBeeTokenizer
from trainer.generation import CPMBeeBeamSearch, CPMBeeSampling, generate
from trainer.generation.logits import (
    BANNED_LOGIT,
    apply_repetition_penalty,
    ban,
    banned_columns,
    draw,
    top_k_top_p_filter,
)
from trainer.generation.prompt import PROMPT_KEYS
from trainer.model import KEY_FIELDS, CPMBee, KVCache

TINY_VOCAB = Path(__file__).parent / "assets" / "tiny_vocab.txt"

SAMPLES = [
    {"input": "abc", "<ans>": ""},
    {"text": "a<mask_0>b<mask_1>", "<ans>": {"<mask_0>": "", "<mask_1>": ""}},
    {"question": "q", "options": {"<option_0>": "ab", "<option_1>": "ba"}, "<ans>": ""},
    {"input": "abcabcabc abc abc", "hint": "c", "<ans>": {"x": "", "y": {"z": ""}}},
]


@pytest.fixture(scope="module")
def tokenizer() -> CPMBeeTokenizer:
    return CPMBeeTokenizer(TINY_VOCAB)


def tiny_model(tokenizer: CPMBeeTokenizer, seed: int = 0, **update) -> CPMBee:
    """2-layer tiny model (segment buckets enough for SAMPLES' depth) whose `</s>` embedding
    points along the mean final hidden state, so that answers end at varied lengths and the
    multi-slot samples cross from slot to slot."""
    config = preset("tiny").model_copy(update={"vocab_size": 128, "position_bias_num_segment_buckets": 128, **update})
    torch.manual_seed(seed)
    model = CPMBee(config).eval()
    batch = CPMBeeBeamSearch(model, tokenizer).prepare(copy.deepcopy(SAMPLES))
    _, hidden, _ = model.inference(*(batch.prompt[k] for k in PROMPT_KEYS), batch.segment_rel, batch.ext_table_ids,
                                   batch.ext_table_sub)  # fmt: skip
    mean = hidden.mean(dim=(0, 1))
    with torch.no_grad():
        model.input_embedding.weight[tokenizer.eos_id] = mean / mean.norm() * 0.1
    return model


@pytest.fixture(scope="module")
def model(tokenizer) -> CPMBee:
    return tiny_model(tokenizer)


def test_cached_steps_equal_one_full_recomputation(model, tokenizer):
    # a left-padded batch with an in-context sample: the prompt, then 5 generated tokens one
    # call at a time (growing the cache), against one pass over everything with feed_step
    gen = CPMBeeBeamSearch(model, tokenizer)
    batch = gen.prepare(copy.deepcopy(SAMPLES[:2]), in_context_samples=[[{"input": "b", "<ans>": "c"}], []])
    prompt, rows, width, new = batch.prompt, batch.size, batch.prompt["input"].size(1), 5
    args = (batch.segment_rel, batch.ext_table_ids, batch.ext_table_sub)
    generated = {
        "input": torch.randint(0, 100, (rows, new), dtype=torch.int32), "input_sub": torch.zeros(rows, new, dtype=torch.int32),
        "position": torch.arange(new, dtype=torch.int32).expand(rows, -1), "context": torch.ones(rows, new, dtype=torch.bool),
        "sample_ids": torch.zeros(rows, new, dtype=torch.int32), "num_segments": batch.num_segments[:, None].expand(-1, new),
        "segment": torch.tensor([[p.predict_segments[0][0]] for p in batch.prompts], dtype=torch.int32).expand(-1, new),
        "segment_rel_offset": torch.zeros(rows, new, dtype=torch.int32),
    }  # fmt: skip
    out, _, cache = model.inference(*(prompt[k] for k in PROMPT_KEYS), *args, capacity=width + 1)
    steps = [out]
    for t in range(new):
        out, _, cache = model.inference(*(generated[k][:, t : t + 1] for k in PROMPT_KEYS), *args, past_key_values=cache)
        steps.append(out)
    assert cache.capacity > width + 1  # it grew
    feed_step = torch.cat([torch.zeros(width, dtype=torch.int32), torch.arange(1, new + 1, dtype=torch.int32)]).expand(rows, -1)
    full, _, _ = model.inference(*(torch.cat([prompt[k], generated[k]], dim=1) for k in PROMPT_KEYS), *args, feed_step=feed_step)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)


def test_reordering_hypotheses_of_one_sample_moves_only_their_generated_columns(model):
    # rows 0-1 continue sample A and rows 2-3 sample B: they share their sample's first 3
    # (prompt) columns, so copying the 3 generated ones gives what a full reorder gives
    cache = KVCache.empty(model, 4, 8, torch.device("cpu"))
    torch.manual_seed(0)
    for kv in cache.layers:
        kv.k.normal_(), kv.v.normal_()
        for t in (kv.k, kv.v):
            t[1, :, :3], t[3, :, :3] = t[0, :, :3], t[2, :, :3]
    for name in KEY_FIELDS:
        values = getattr(cache, name)
        values.copy_(torch.randint(0, 5, values.shape).to(values.dtype))
        values[1, :3], values[3, :3] = values[0, :3], values[2, :3]
    cache.filled = 6
    index = torch.tensor([1, 1, 3, 2])
    full, shared = copy.deepcopy(cache), copy.deepcopy(cache)
    full.reorder(index)
    shared.reorder(index, shared_columns=3)
    for a, b in zip(full.layers, shared.layers):
        assert torch.equal(a.k[:, :, :6], b.k[:, :, :6]) and torch.equal(a.v[:, :, :6], b.v[:, :, :6])
    for name in KEY_FIELDS:
        assert torch.equal(getattr(full, name)[:, :6], getattr(shared, name)[:, :6])


def test_inference_equals_the_training_forward(tokenizer):
    # one span, no padding: CPMBee.forward and CPMBee.inference see the same masks and buckets
    model = tiny_model(tokenizer, mask_modules=[(False, True), (True, False)])
    batch = CPMBeeBeamSearch(model, tokenizer).prepare([copy.deepcopy(SAMPLES[3])])
    p = batch.prompt
    length = torch.tensor([p["input"].size(1)], dtype=torch.int32)
    with torch.no_grad():
        forward, _ = model(p["input"], p["input_sub"], length, p["context"], p["sample_ids"], p["num_segments"],
                           p["segment"], p["segment_rel_offset"], batch.segment_rel, torch.zeros_like(p["input"]),
                           batch.ext_table_ids, batch.ext_table_sub)  # fmt: skip
    inference, _, _ = model.inference(*(p[k] for k in PROMPT_KEYS), batch.segment_rel, batch.ext_table_ids, batch.ext_table_sub)
    torch.testing.assert_close(inference, forward, rtol=1e-5, atol=1e-5)


def _tokens(model, tokenizer, samples, use_cache, **kwargs):
    from trainer.generation.search import beam_search
    from trainer.generation.stepper import Stepper

    gen = CPMBeeBeamSearch(model, tokenizer)
    stepper = Stepper(model, gen.prepare(copy.deepcopy(samples)), use_cache=use_cache, max_steps=kwargs["max_length"] + 2)
    with torch.inference_mode():
        return beam_search(stepper, tokenizer, kwargs["beam_size"], kwargs["max_length"], kwargs.get("repetition_penalty", 1.0), None)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_beam_search_gives_the_same_tokens_with_and_without_the_cache(model, tokenizer, beam_size):
    kwargs = dict(beam_size=beam_size, max_length=12, repetition_penalty=1.2)
    cached = _tokens(model, tokenizer, SAMPLES, True, **kwargs)
    assert cached == _tokens(model, tokenizer, SAMPLES, False, **kwargs)
    assert any(word == tokenizer.eos_id for answer in cached for word, _ in answer[:-1])  # slots were crossed
    # a batch of different lengths decodes each sample as it would alone
    assert cached == [_tokens(model, tokenizer, [s], True, **kwargs)[0] for s in SAMPLES]


def test_generate_fills_answers_in_place_like_cpm_bee(model, tokenizer):
    data = copy.deepcopy(SAMPLES)
    slots = data[1]["<ans>"]
    out = CPMBeeBeamSearch(model, tokenizer).generate(data, beam_size=2, max_length=10)
    assert out is data
    assert isinstance(data[0]["<ans>"], str)
    assert set(data[1]["<ans>"]) == {"<mask_0>", "<mask_1>"} and slots == {"<mask_0>": "", "<mask_1>": ""}
    assert set(data[3]["<ans>"]) == {"x", "y"} and set(data[3]["<ans>"]["y"]) == {"z"}
    for sample, original in zip(data, SAMPLES):
        assert {k: v for k, v in sample.items() if k != "<ans>"} == {k: v for k, v in original.items() if k != "<ans>"}
    # texts decode from generated tokens: all are strings, or None for a slot never reached
    leaves = [data[0]["<ans>"], *data[1]["<ans>"].values(), data[3]["<ans>"]["x"], data[3]["<ans>"]["y"]["z"]]
    assert all(v is None or isinstance(v, str) for v in leaves)


def test_a_slot_never_reached_becomes_none(model, tokenizer):
    data = [{"t": "a", "<ans>": {"s1": "", "s2": "", "s3": ""}}]
    CPMBeeBeamSearch(model, tokenizer).generate(data, beam_size=1, max_length=1)
    assert None in data[0]["<ans>"].values()


def test_samples_without_an_answer_are_refused_by_index(model, tokenizer):
    gen = CPMBeeBeamSearch(model, tokenizer)
    with pytest.raises(SampleError, match="sample 1: needs a top-level <ans>"):
        gen.generate([{"input": "a", "<ans>": ""}, {"input": "a"}])
    with pytest.raises(SampleError, match="sample 0"):
        gen.generate([{"input": 3, "<ans>": ""}])


def test_repetition_penalty_is_cpm_bees_loop_vectorised():
    torch.manual_seed(1)
    logits = torch.randn(3, 10)
    previous = torch.tensor([[1, 1, 2], [3, 4, 5], [0, 9, 9]])
    expected = logits.clone()
    for row in range(3):  # CPM-Bee's apply_repetition_penalty, per distinct token
        for token in set(previous[row].tolist()):
            expected[row, token] = expected[row, token] * 1.5 if expected[row, token] < 0 else expected[row, token] / 1.5
    assert torch.equal(apply_repetition_penalty(logits.clone(), previous, 1.5), expected)
    assert torch.equal(apply_repetition_penalty(logits.clone(), previous, 1.0), logits)
    with pytest.raises(ValueError, match=">= 1.0"):
        apply_repetition_penalty(logits, previous, 0.5)


def test_banned_token_lists_write_what_a_full_mask_would():
    banned = torch.zeros((4, 12), dtype=torch.bool)
    banned[0, [2, 5, 11]] = True
    banned[2, 0] = True  # row 1 bans nothing, row 3 bans every token
    banned[3] = True
    columns, valid = banned_columns(banned)
    logits = torch.randn(4, 12)
    rows = torch.tensor([0, 0, 1, 2, 3, 1])  # hypotheses of samples 0, 0, 1, 2, 3, 1
    expected = logits[rows].masked_fill(banned[rows], BANNED_LOGIT)
    assert torch.equal(ban(logits[rows].clone(), columns[rows], valid[rows]), expected)


def test_draw_follows_the_softmax_and_never_picks_filtered_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.0, 0.0, 1.0, 0.0]])).repeat(2000, 1)
    words = draw(logits, torch.Generator().manual_seed(0)).view(2000, 2)
    assert (words[:, 1] == 2).all() and (words[:, 0] != 3).all()
    shares = torch.bincount(words[:, 0], minlength=4).float() / 2000
    assert torch.allclose(shares, torch.tensor([0.5, 0.3, 0.2, 0.0]), atol=0.04)
    again = draw(logits, torch.Generator().manual_seed(0)).view(2000, 2)
    assert torch.equal(words, again)


def test_top_k_and_top_p_filtering():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(top_k_top_p_filter(logits, top_k=2)).tolist() == [[False, False, True, True]]
    assert torch.isinf(top_k_top_p_filter(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(top_k_top_p_filter(logits, top_p=0.1)).tolist() == [[False, True, True, True]]  # best stays
    assert not torch.isinf(top_k_top_p_filter(logits)).any()


def test_sampling_is_reproducible_by_seed_and_greedy_with_top_k_1(model, tokenizer):
    def run(seed, **kwargs):
        return CPMBeeSampling(model, tokenizer).generate(copy.deepcopy(SAMPLES), max_length=10, seed=seed, **kwargs)

    assert run(3) == run(3)
    assert run(3, top_k=1) == run(4, top_k=1)  # only the argmax survives
    assert json.dumps(run(3, top_p=0.9, temperature=0.7, repetition_penalty=1.1), ensure_ascii=False)
    no_cache = CPMBeeSampling(model, tokenizer).generate(copy.deepcopy(SAMPLES), max_length=10, seed=3, use_cache=False)
    assert no_cache == run(3)
    assert generate(model, tokenizer, copy.deepcopy(SAMPLES), do_sample=True, max_length=10, seed=3) == run(3)
    with pytest.raises(ValueError, match="temperature"):
        run(3, temperature=0.0)


@pytest.mark.skipif(not hasattr(torch, "bfloat16"), reason="no bfloat16 in this torch")
def test_bfloat16_model_decodes_with_a_bfloat16_cache(tokenizer):
    model = tiny_model(tokenizer).to(torch.bfloat16)
    gen = CPMBeeBeamSearch(model, tokenizer)
    batch = gen.prepare(copy.deepcopy(SAMPLES[:2]))
    logits, _, cache = model.inference(*(batch.prompt[k] for k in PROMPT_KEYS), batch.segment_rel,
                                       batch.ext_table_ids, batch.ext_table_sub)  # fmt: skip
    assert logits.dtype == torch.bfloat16 and cache.layers[0].k.dtype == torch.bfloat16
    data = gen.generate(copy.deepcopy(SAMPLES), beam_size=2, max_length=6)
    assert all("<ans>" in sample for sample in data)


def test_bee_generate_end_to_end(tmp_path, tokenizer):
    from typer.testing import CliRunner

    from flows.cli import app
    from trainer.weight_names import to_cpm_live_state_dict

    model = tiny_model(tokenizer)
    torch.save(to_cpm_live_state_dict(model), tmp_path / "model.pt")
    (tmp_path / "model_config.json").write_text(model.config.model_dump_json())
    lines = [json.dumps(s, ensure_ascii=False) for s in SAMPLES] + ["not json", json.dumps({"input": "no answer"})]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["generate", str(tmp_path / "model.pt"), "--input", str(tmp_path / "in.jsonl"), "--output", str(out),
            "--vocab", str(TINY_VOCAB), "--beam-size", "2", "--max-length", "8", "--batch-size", "3"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    filled = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    expected = CPMBeeBeamSearch(model, tokenizer).generate(copy.deepcopy(SAMPLES), beam_size=2, max_length=8)
    assert filled == expected
    rejects = [json.loads(line) for line in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [5, 6]
    assert "not JSON" in rejects[0]["reason"] and "<ans>" in rejects[1]["reason"]
    assert "generated 4 of 6 samples (2 rejected)" in result.output

    result = CliRunner().invoke(app, ["generate", str(tmp_path / "model.pt"), "--vocab", str(TINY_VOCAB)])
    assert result.exit_code == 2 and "--input" in result.output
