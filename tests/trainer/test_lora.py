"""LoRA on CPM-Bee's projections: starts as the base model, trains only the delta, merges back exactly."""

from __future__ import annotations

import pytest
import torch

from schemas import preset
from trainer.lora import LoRAScaledLinear, add_lora, lora_state_dict, merge_lora
from trainer.model import CPMBee

TARGETS = ["project_q", "project_k", "project_v", "attention_out", "w_0", "w_1", "w_out"]


def tiny_model() -> CPMBee:
    torch.manual_seed(0)
    return CPMBee(preset("tiny"))


def test_lora_wraps_every_attention_and_ffn_projection_and_freezes_the_rest() -> None:
    model = tiny_model()
    replaced = add_lora(model, TARGETS, rank=4, alpha=8.0)
    assert len(replaced) == 2 * 7  # 2 layers x (q, k, v, out, w_0, w_1, w_out)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.endswith(("lora_A", "lora_B")) for name in trainable)
    # base weights keep their cpm_live names
    assert "encoder.layers.0.self_att.self_attention.project_q.weight" in model.state_dict()


def test_a_fresh_lora_model_computes_exactly_the_base_model() -> None:
    x = torch.randn(2, 5, 64)
    base = tiny_model().encoder.layers[0].self_att.self_attention.project_q
    wrapped = LoRAScaledLinear(base, rank=4, alpha=8.0)
    assert torch.equal(wrapped(x), base(x))


def test_merge_folds_the_update_into_the_weight() -> None:
    model = tiny_model()
    add_lora(model, ["project_q", "w_out"], rank=2, alpha=4.0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.normal_()
    x = torch.randn(3, 64)
    module = model.encoder.layers[1].self_att.self_attention.project_q
    expected = module(x)
    merge_lora(model)
    merged = model.encoder.layers[1].self_att.self_attention.project_q
    assert type(merged).__name__ == "ScaledLinear"
    torch.testing.assert_close(merged(x), expected, rtol=1e-5, atol=1e-5)


def test_the_delta_state_dict_holds_only_lora_tensors() -> None:
    model = tiny_model()
    add_lora(model, ["w_0"], rank=2, alpha=2.0)
    delta = lora_state_dict(model)
    assert sorted(delta) == [f"encoder.layers.{i}.ffn.ffn.w_in.w_0.{k}" for i in (0, 1) for k in ("lora_A", "lora_B")]


def test_unknown_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="no ScaledLinear named any of \\['query'\\]"):
        add_lora(tiny_model(), ["query"], rank=2, alpha=2.0)
