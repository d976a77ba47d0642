"""Specification of trainer.model.CPMBee: equal to CPM-Bee's reference, masks, pruning, grads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from schemas.model_config import ModelConfig, preset
from trainer.layers import BucketPositionBias, rotate_by_sub
from trainer.model import CPMBee, attention_mask

GOLDEN = Path(__file__).parent / "golden" / "cpmbee_tiny.npz"
BATCH_KEYS = (
    "input", "input_sub", "length", "context", "sample_ids", "num_segments", "segment",
    "segment_rel_offset", "segment_rel", "span", "ext_table_ids", "ext_table_sub",
)  # fmt: skip


@pytest.fixture(scope="module")
def golden() -> dict:
    """Tiny model (512 vocab, 3 layers, 2 pruned modules) with int8-coded weights, a packed
    batch of 2 x 40 and the logits of CPM-Bee's CPMBeeTorch for them, written by
    tests/benchmarks/compare_model_reference.py --write-golden."""
    data = np.load(GOLDEN)
    config = ModelConfig.model_validate(json.loads(str(data["config"])))
    state = {}
    for key in data.files:
        if key.startswith("weight/"):
            name = key.removeprefix("weight/")
            # int8 codes times a power of two: exactly the float32 weights the reference ran
            state[name] = torch.from_numpy(data[key].astype(np.float32)) * 2.0 ** -int(data[f"exp/{name}"])
    batch = {key: torch.from_numpy(data[f"batch/{key}"]) for key in BATCH_KEYS}
    return {"config": config, "state": state, "batch": batch, "logits": torch.from_numpy(data["logits"])}


def golden_model(golden: dict) -> CPMBee:
    model = CPMBee(golden["config"])
    model.load_state_dict(golden["state"], strict=True)
    return model.eval()


def run(model: CPMBee, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return model(*[batch[k] for k in BATCH_KEYS])


def test_logits_equal_reference_cpmbeetorch_within_1e_5(golden):
    with torch.no_grad():
        logits, _ = run(golden_model(golden), golden["batch"])
    ref = golden["logits"]
    rel = float((logits - ref).abs().max() / ref.abs().max())
    assert rel <= 1e-5, f"max relative error {rel:.2e}"


def test_output_shapes_cover_vocab_plus_ext_table(golden):
    batch, config = golden["batch"], golden["config"]
    logits, hidden = run(golden_model(golden), batch)
    b, seqlen = batch["input"].shape
    assert logits.shape == (b, seqlen, config.vocab_size + len(batch["ext_table_ids"]))
    assert hidden.shape == (b, seqlen, config.dim_model)
    assert torch.isfinite(logits).all()


def changed(batch: dict, row: int, positions: list[int]) -> dict:
    """The batch with the tokens at `positions` of `row` replaced."""
    out = {k: v.clone() for k, v in batch.items()}
    out["input"][row, positions] = (out["input"][row, positions] + 7) % 500
    return out


def logit_change(model: CPMBee, batch: dict, other: dict, row: int) -> torch.Tensor:
    """Per position of `row`: largest logit change between the two batches."""
    with torch.no_grad():
        a, _ = run(model, batch)
        b, _ = run(model, other)
    return (a[row] - b[row]).abs().amax(dim=-1)


def positions(batch: dict, row: int, **where) -> list[int]:
    valid = torch.arange(batch["input"].size(1)) < batch["length"][row]
    for key, value in where.items():
        valid &= batch[key][row] == value
    return torch.nonzero(valid).flatten().tolist()


def test_in_context_sample_sees_only_itself_and_main_sample_sees_all(golden):
    model, batch = golden_model(golden), golden["batch"]
    sample_1, sample_2 = positions(batch, 0, sample_ids=1), positions(batch, 0, sample_ids=2)
    main = positions(batch, 0, sample_ids=0, span=0)
    assert sample_1 and sample_2 and main
    delta = logit_change(model, batch, changed(batch, 0, sample_2), row=0)
    assert delta[sample_1].max() == 0  # another in-context sample: invisible
    assert delta[main].max() > 0  # the main sample (id 0) sees its in-context samples


def test_no_token_sees_across_spans(golden):
    model, batch = golden_model(golden), golden["batch"]
    span_0, span_1 = positions(batch, 1, span=0), positions(batch, 1, span=1)
    assert span_0 and span_1
    delta = logit_change(model, batch, changed(batch, 1, span_1), row=1)
    assert delta[span_0].max() == 0
    assert delta[span_1].max() > 0


def test_tokens_after_length_change_nothing_before_it(golden):
    model, batch = golden_model(golden), golden["batch"]
    length, seqlen = int(batch["length"][0]), batch["input"].size(1)
    assert length < seqlen
    delta = logit_change(model, batch, changed(batch, 0, list(range(length, seqlen))), row=0)
    assert delta[:length].max() == 0


def test_context_is_bidirectional_and_answers_causal(golden):
    model, batch = golden_model(golden), golden["batch"]
    context = positions(batch, 0, span=0, sample_ids=0, context=True)
    answer = positions(batch, 0, span=0, sample_ids=0, context=False)
    assert len(context) > 1 and len(answer) > 1
    # a late context token changes an earlier one
    assert logit_change(model, batch, changed(batch, 0, [context[-1]]), row=0)[context[0]] > 0
    # an answer token changes neither the context nor the answer tokens before it
    delta = logit_change(model, batch, changed(batch, 0, [answer[-1]]), row=0)
    assert delta[context + answer[:-1]].max() == 0


def test_attention_mask_rules_on_a_handmade_row():
    # one row of 6: span 0 = main sample (context, context, answer) + in-context sample 1
    # (one token); span 1 = one token; position 5 is padding
    mask = attention_mask(
        length=torch.tensor([5]),
        context=torch.tensor([[True, True, False, True, True, False]]),
        sample_ids=torch.tensor([[0, 0, 0, 1, 0, 0]]),
        span=torch.tensor([[0, 0, 0, 0, 1, 0]]),
    )[0]
    expected = torch.tensor([
        # keys: 0  1  2  3  4  5
        [1, 1, 0, 1, 0, 0],  # context: sees context keys of its span (any position)
        [1, 1, 0, 1, 0, 0],
        [1, 1, 1, 1, 0, 0],  # answer: context + itself (causal)
        [0, 0, 0, 1, 0, 0],  # in-context sample: only its own sample
        [0, 0, 0, 0, 1, 0],  # span 1: only its span
        [0, 0, 0, 0, 0, 0],  # padding: nothing
    ], dtype=torch.bool)  # fmt: skip
    assert torch.equal(mask, expected)


def test_rows_that_see_no_key_get_zero_attention_output(golden):
    # CPM-Bee: masked_fill(-inf) -> softmax -> masked_fill(0), so a padding row attends to nothing
    model, batch = golden_model(golden), golden["batch"]
    captured = []
    model.encoder.layers[0].self_att.self_attention.register_forward_hook(lambda m, i, out: captured.append(out))
    with torch.no_grad():
        run(model, batch)
    (out,) = captured  # (B, L, D)
    for row, length in enumerate(batch["length"].tolist()):
        assert length < out.size(1)
        assert torch.count_nonzero(out[row, length:]) == 0
        assert torch.count_nonzero(out[row, :length].abs().amax(dim=-1)) == length


def test_padding_rows_give_finite_outputs_and_gradients(golden):
    model = golden_model(golden).train()
    logits, hidden = run(model, golden["batch"])
    logits.float().pow(2).mean().backward()
    assert torch.isfinite(hidden).all()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_gradient_reaches_every_parameter(golden):
    model = golden_model(golden).train()
    logits, _ = run(model, golden["batch"])
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), golden["batch"]["input"].flatten().long()).backward()
    silent = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().max() == 0]
    assert silent == []


def test_masked_modules_are_absent():
    config = preset("tiny").model_copy(update={"num_layers": 3, "mask_modules": [(True, False), (False, True), (True, True)]})
    model = CPMBee(config)
    keys = model.state_dict().keys()
    assert not any(k.startswith("encoder.layers.0.self_att.") for k in keys)
    assert any(k.startswith("encoder.layers.0.ffn.") for k in keys)
    assert any(k.startswith("encoder.layers.1.self_att.") for k in keys)
    assert not any(k.startswith(("encoder.layers.1.ffn.", "encoder.layers.2.")) for k in keys)
    assert sum(k.endswith("project_q.weight") for k in keys) == config.num_attention_layers == 1
    assert sum(k.endswith("w_out.weight") for k in keys) == config.num_ffn_layers == 1


def test_fully_masked_layer_is_the_identity_before_the_final_norm():
    config = preset("tiny").model_copy(update={"num_layers": 1, "mask_modules": [(True, True)]})
    model = CPMBee(config)
    hidden = torch.randn(2, 5, config.dim_model)
    assert torch.equal(model.encoder.layers[0](hidden, None, None), hidden)


def test_activation_checkpointing_gives_the_same_loss_and_gradients(golden):
    grads = []
    for checkpointing in (False, True):
        model = golden_model(golden).train()
        model.enable_activation_checkpointing(checkpointing)
        logits, _ = run(model, golden["batch"])
        loss = logits.pow(2).mean()
        loss.backward()
        grads.append((loss.detach(), {k: p.grad for k, p in model.named_parameters()}))
    (loss_a, grad_a), (loss_b, grad_b) = grads
    assert torch.equal(loss_a, loss_b)
    for key in grad_a:
        torch.testing.assert_close(grad_a[key], grad_b[key], rtol=1e-5, atol=1e-7)


def test_constructor_flag_enables_activation_checkpointing():
    assert CPMBee(preset("tiny"), activation_checkpointing=True).encoder.activation_checkpointing


def test_dropout_acts_only_in_training(golden):
    config = golden["config"].model_copy(update={"dropout_p": 0.5})
    model = CPMBee(config)
    model.load_state_dict(golden["state"])
    with torch.no_grad():
        model.eval()
        a, b = run(model, golden["batch"])[0], run(model, golden["batch"])[0]
        assert torch.equal(a, b)
        model.train()
        assert not torch.equal(run(model, golden["batch"])[0], a)


def test_bf16_autocast_stays_close_to_float32(golden):
    model = golden_model(golden)
    with torch.no_grad():
        ref, _ = run(model, golden["batch"])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low, _ = run(model, golden["batch"])
    assert torch.isfinite(low).all()
    assert float((low.float() - ref).abs().max() / ref.abs().max()) < 0.05


def test_bfloat16_weights_train_without_autocast(golden):
    # DeepSpeed's bf16 mode casts the weights themselves instead of using autocast
    model = golden_model(golden).to(torch.bfloat16).train()
    logits, hidden = run(model, golden["batch"])
    assert logits.dtype == hidden.dtype == torch.bfloat16
    logits.float().pow(2).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    with torch.no_grad():
        ref, _ = run(golden_model(golden), golden["batch"])
    assert float((logits.detach().float() - ref).abs().max() / ref.abs().max()) < 0.05


def test_official_10b_config_builds_on_the_meta_device(shared_cpm_bee):
    config = ModelConfig.model_validate_json((shared_cpm_bee / "cpm-bee-10b.json").read_text())
    with torch.device("meta"):
        model = CPMBee(config)
    state = model.state_dict()
    assert len(state) == 3 + 9 * config.num_layers
    assert state["input_embedding.weight"].shape == (86583, 4096)
    assert state["position_bias.relative_attention_bias"].shape == (512, 32)
    assert 9.5e9 < sum(p.numel() for p in model.parameters()) < 1.0e10


def test_rotation_by_sub_zero_is_identity_and_keeps_the_norm():
    x = torch.randn(3, 7, 64)
    assert torch.allclose(rotate_by_sub(x, torch.zeros(3, 7, dtype=torch.int32)), x)
    rotated = rotate_by_sub(x, torch.randint(1, 50, (3, 7)))
    assert not torch.allclose(rotated, x)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))


@settings(max_examples=50, deadline=None)
@given(num_buckets=st.sampled_from([8, 32, 256]), max_distance=st.sampled_from([16, 128, 2048]))
def test_position_buckets_split_by_sign_and_grow_with_distance(num_buckets, max_distance):
    assume(max_distance > num_buckets // 4)  # the logarithmic range starts at num_buckets / 4
    bias = BucketPositionBias(num_heads=1, num_buckets=num_buckets, num_segment_buckets=4, max_distance=max_distance)
    distance = torch.arange(0, 4 * max_distance)
    backward = bias.relative_position_bucket(-distance)  # keys before the query
    forward = bias.relative_position_bucket(distance)
    half = num_buckets // 2
    assert backward.min() == 0 and backward.max() <= half - 1
    assert forward[1:].min() >= half and forward.max() <= num_buckets - 1
    assert (backward.diff() >= 0).all() and (forward[1:].diff() >= 0).all()
    exact = half // 2
    assert torch.equal(backward[:exact], distance[:exact].int())  # exact buckets for short distances
    assert backward[-1] == half - 1  # beyond max_distance: the last bucket


def test_initial_weights_follow_cpm_bee():
    torch.manual_seed(0)
    model = CPMBee(preset("tiny"))
    assert abs(float(model.input_embedding.weight.std()) - 0.02) < 0.002
    assert abs(float(model.position_bias.relative_attention_bias.std()) - 1.0) < 0.1
    assert abs(float(model.encoder.layers[0].ffn.ffn.w_out.weight.std()) - 1.0) < 0.05
    assert torch.equal(model.encoder.output_layernorm.weight, torch.ones(64))


def test_every_module_owning_weights_initialises_itself():
    # DeepSpeed's zero.Init partitions a module's weights once its __init__ returns, so a
    # parent cannot initialise them later: each owner does it in its own __init__
    model = CPMBee(preset("tiny"))
    owners = [m for m in model.modules() if list(m.parameters(recurse=False))]
    assert owners and all(hasattr(m, "reset_parameters") for m in owners)
    before = model.input_embedding.weight.clone()
    model.reset_parameters()
    assert not torch.equal(before, model.input_embedding.weight)
