"""trainer.param_stats on a whole (unpartitioned) model in one process; the ZeRO-3 path runs in test_pretrain."""

from __future__ import annotations

import math

import torch

from schemas.model_config import preset
from trainer.model import CPMBee
from trainer.param_stats import group_name, parameter_stats


def test_layer_numbers_are_folded_into_one_group():
    assert group_name("encoder.layers.17.ffn.ffn.w_out.weight") == "encoder.layers.*.ffn.ffn.w_out.weight"
    assert group_name("input_embedding.weight") == "input_embedding.weight"


def test_stats_equal_the_concatenated_tensors_of_each_group():
    torch.manual_seed(0)
    model = CPMBee(preset("tiny"))
    for param in model.parameters():
        param.grad = torch.randn_like(param)
    stats = parameter_stats(model.named_parameters(), torch.device("cpu"))
    name = "encoder.layers.*.self_att.self_attention.project_q.weight"
    layers = [model.encoder.layers[i].self_att.self_attention.project_q for i in range(2)]
    weights = torch.cat([layer.weight.reshape(-1) for layer in layers]).double()
    grads = torch.cat([layer.weight.grad.reshape(-1) for layer in layers]).double()
    got = stats[name]
    assert math.isclose(got["weight_mean"], weights.mean().item(), rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(got["weight_std"], weights.std(correction=0).item(), rel_tol=1e-6)
    assert got["weight_max"] == weights.max().item() and got["grad_max"] == grads.max().item()
    assert math.isclose(got["grad_std"], grads.std(correction=0).item(), rel_tol=1e-6)
    assert len(stats) == len({group_name(n) for n, _ in model.named_parameters()})


def test_frozen_parameters_have_weight_stats_only():
    model = CPMBee(preset("tiny"))
    model.requires_grad_(False)
    stats = parameter_stats(model.named_parameters(), torch.device("cpu"))
    assert all(set(values) == {"weight_mean", "weight_std", "weight_max"} for values in stats.values())
