"""Specification of CPM-Bee checkpoint conversion: cpm_live and Hugging Face layouts."""

from __future__ import annotations

import pytest
import torch

from schemas.model_config import preset
from trainer.model import CPMBee
from trainer.weight_names import CheckpointMismatch, from_cpm_live_state_dict, to_cpm_live_state_dict, to_hf_state_dict

CONFIG = preset("tiny").model_copy(update={"vocab_size": 300, "num_layers": 2, "mask_modules": [(False, False), (True, False)]})


def small_batch(seqlen: int = 9) -> list[torch.Tensor]:
    """One row: a single segment of context tokens then three answer tokens."""
    zeros = torch.zeros(1, seqlen, dtype=torch.int32)
    return [
        torch.randint(0, CONFIG.vocab_size, (1, seqlen), dtype=torch.int32),  # input
        zeros,  # input_sub
        torch.tensor([seqlen], dtype=torch.int32),  # length
        torch.arange(seqlen)[None] < seqlen - 3,  # context
        zeros,  # sample_ids
        torch.ones(1, seqlen, dtype=torch.int32),  # num_segments
        zeros,  # segment
        zeros,  # segment_rel_offset
        torch.zeros(1, 1, dtype=torch.int32),  # segment_rel
        zeros,  # span
        torch.tensor([0], dtype=torch.int32),  # ext_table_ids (CPM-Bee's placeholder)
        torch.tensor([1], dtype=torch.int32),  # ext_table_sub
    ]


@pytest.fixture(scope="module")
def model() -> CPMBee:
    torch.manual_seed(0)
    return CPMBee(CONFIG).eval()


def test_cpm_live_names_are_the_official_layout(model):
    keys = set(to_cpm_live_state_dict(model))
    assert {
        "input_embedding.weight",
        "position_bias.relative_attention_bias",
        "encoder.output_layernorm.weight",
        "encoder.layers.0.self_att.layernorm_before_attention.weight",
        "encoder.layers.0.self_att.self_attention.project_q.weight",
        "encoder.layers.0.self_att.self_attention.attention_out.weight",
        "encoder.layers.0.ffn.layernorm_before_ffn.weight",
        "encoder.layers.0.ffn.ffn.w_in.w_0.weight",
        "encoder.layers.0.ffn.ffn.w_in.w_1.weight",
        "encoder.layers.0.ffn.ffn.w_out.weight",
        "encoder.layers.1.ffn.ffn.w_out.weight",
    } <= keys
    assert not any(k.startswith("encoder.layers.1.self_att") for k in keys)  # pruned by mask_modules


def test_hf_names_are_cpm_live_names_behind_cpmbee_prefix(model):
    assert set(to_hf_state_dict(model)) == {"cpmbee." + k for k in to_cpm_live_state_dict(model)}


@pytest.mark.parametrize("export", [to_cpm_live_state_dict, to_hf_state_dict])
def test_round_trip_keeps_weights_and_outputs(model, export):
    loaded = from_cpm_live_state_dict(CONFIG, export(model)).eval()
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    batch = small_batch()
    with torch.no_grad():
        assert torch.equal(model(*batch)[0], loaded(*batch)[0])


def test_export_is_a_copy_not_a_view(model):
    state = to_cpm_live_state_dict(model)
    state["input_embedding.weight"].zero_()
    assert model.input_embedding.weight.abs().sum() > 0


def test_hf_lm_head_tied_to_the_embedding_is_accepted(model):
    state = to_hf_state_dict(model)
    state["lm_head.weight"] = state["cpmbee.input_embedding.weight"].clone()
    loaded = from_cpm_live_state_dict(CONFIG, state)
    assert torch.equal(loaded.input_embedding.weight, model.input_embedding.weight)


def test_half_precision_checkpoint_loads_into_float32(model):
    state = {k: v.half() for k, v in to_cpm_live_state_dict(model).items()}
    loaded = from_cpm_live_state_dict(CONFIG, state)
    assert loaded.input_embedding.weight.dtype == torch.float32
    torch.testing.assert_close(loaded.input_embedding.weight, model.input_embedding.weight, rtol=1e-3, atol=1e-4)


def test_missing_keys_are_listed(model):
    state = to_cpm_live_state_dict(model)
    del state["encoder.output_layernorm.weight"]
    del state["encoder.layers.0.ffn.ffn.w_out.weight"]
    with pytest.raises(CheckpointMismatch, match=r"missing keys \(2\): encoder.layers.0.ffn.ffn.w_out.weight, encoder.output_layernorm.weight"):
        from_cpm_live_state_dict(CONFIG, state)


def test_unexpected_keys_are_listed(model):
    state = to_cpm_live_state_dict(model)
    state["encoder.layers.7.ffn.ffn.w_out.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatch, match=r"unexpected keys \(1\): encoder.layers.7.ffn.ffn.w_out.weight"):
        from_cpm_live_state_dict(CONFIG, state)


def test_shape_mismatch_names_the_key_and_both_shapes(model):
    state = to_cpm_live_state_dict(model)
    state["input_embedding.weight"] = torch.zeros(301, CONFIG.dim_model)
    with pytest.raises(CheckpointMismatch, match=r"input_embedding.weight: checkpoint \(301, 64\) vs model \(300, 64\)"):
        from_cpm_live_state_dict(CONFIG, state)


def test_checkpoint_of_an_unpruned_model_fails_on_a_pruned_config():
    unpruned = CPMBee(CONFIG.model_copy(update={"mask_modules": None}))
    with pytest.raises(CheckpointMismatch, match=r"unexpected keys \(5\): encoder.layers.1.self_att"):
        from_cpm_live_state_dict(CONFIG, to_cpm_live_state_dict(unpruned))


def test_hf_keys_mixed_with_unprefixed_keys_are_unexpected(model):
    state = to_hf_state_dict(model)
    state["encoder.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatch, match=r"unexpected keys \(1\): encoder.extra.weight"):
        from_cpm_live_state_dict(CONFIG, state)


def test_loaded_model_has_activation_checkpointing_when_asked(model):
    loaded = from_cpm_live_state_dict(CONFIG, to_cpm_live_state_dict(model), activation_checkpointing=True)
    assert loaded.encoder.activation_checkpointing
