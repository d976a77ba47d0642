"""Specification of `trainer.model_io.load_model` and `bee export`: every checkpoint kind, round trips bit for bit."""

from __future__ import annotations

import json

import pytest
import torch

from schemas import SchemaError
from schemas.model_config import preset, to_hf_config
from trainer.export import export_checkpoint
from trainer.lora import add_lora, lora_state_dict, merge_lora
from trainer.model import CPMBee
from trainer.model_io import ModelLoadError, describe_checkpoint, load_model
from trainer.safe_load import UnsafeCheckpoint
from trainer.weight_names import CheckpointMismatch, to_cpm_live_state_dict, to_hf_state_dict

CONFIG = preset("tiny").model_copy(update={"vocab_size": 300, "mask_modules": [(False, False), (True, False)]})


@pytest.fixture(scope="module")
def model() -> CPMBee:
    torch.manual_seed(0)
    return CPMBee(CONFIG)


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def write_config(path, config=CONFIG):
    path.write_text(config.model_dump_json())
    return str(path)


def test_cpm_live_pt_with_a_config_file(model, tmp_path):
    torch.save(to_cpm_live_state_dict(model), tmp_path / "cpm-bee.pt")
    loaded, config = load_model(str(tmp_path / "cpm-bee.pt"), write_config(tmp_path / "m.json"))
    assert config == CONFIG and not loaded.training
    assert same_weights(to_cpm_live_state_dict(loaded), to_cpm_live_state_dict(model))


def test_half_checkpoint_is_read_as_float32_by_default_and_in_the_dtype_asked(model, tmp_path):
    half = {k: v.half() for k, v in to_cpm_live_state_dict(model).items()}
    torch.save(half, tmp_path / "half.pt")
    write_config(tmp_path / "half.json")  # <stem>.json beside the weights, as CPM-Bee ships them
    as_fp32, _ = load_model(str(tmp_path / "half.pt"))
    as_bf16, _ = load_model(str(tmp_path / "half.pt"), dtype="bf16")
    assert as_fp32.input_embedding.weight.dtype == torch.float32
    assert torch.equal(as_fp32.input_embedding.weight, half["input_embedding.weight"].float())
    assert as_bf16.input_embedding.weight.dtype == torch.bfloat16


def test_hf_port_state_dict_and_folder(model, tmp_path):
    state = to_hf_state_dict(model) | {"lm_head.weight": model.input_embedding.weight.detach().clone()}
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(to_hf_config(CONFIG)))
    for path in (tmp_path, tmp_path / "pytorch_model.bin"):  # the folder, or the file with config.json beside
        loaded, config = load_model(str(path))
        assert config == CONFIG
        assert same_weights(to_cpm_live_state_dict(loaded), to_cpm_live_state_dict(model))
    assert describe_checkpoint(tmp_path).kind == "hf"


@pytest.mark.parametrize("fmt", ["cpm-live", "hf"])
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_export_is_read_back_bit_for_bit(model, tmp_path, fmt, dtype):
    torch.save(to_cpm_live_state_dict(model), tmp_path / "in.pt")
    source = str(tmp_path / "in.pt")
    output = tmp_path / ("out.pt" if fmt == "cpm-live" else "out-hf")
    export_checkpoint(source, output, fmt, dtype=dtype, model_config=write_config(tmp_path / "m.json"))
    exported, config = load_model(str(output), dtype=dtype)  # config found beside the export
    expected, _ = load_model(source, str(tmp_path / "m.json"), dtype=dtype)
    assert config == CONFIG
    assert same_weights(to_cpm_live_state_dict(exported), to_cpm_live_state_dict(expected))
    if fmt == "hf":
        from safetensors.torch import load_file

        names = set(load_file(output / "model.safetensors"))
        assert names == {"cpmbee." + k for k in to_cpm_live_state_dict(model)}
        assert json.loads((output / "config.json").read_text())["hidden_size"] == CONFIG.dim_model


def test_lora_delta_is_merged(model, tmp_path):
    torch.save(to_cpm_live_state_dict(model), tmp_path / "base.pt")
    tuned = CPMBee(CONFIG)
    tuned.load_state_dict(model.state_dict())
    torch.manual_seed(1)
    add_lora(tuned, ["project_q", "w_out"], rank=2, alpha=4.0)
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            if name.endswith("lora_B"):
                param.normal_()
    delta = {"lora": lora_state_dict(tuned), "rank": 2, "alpha": 4.0, "targets": ["project_q", "w_out"]}
    torch.save(delta, tmp_path / "delta.pt")
    merge_lora(tuned)
    loaded, _ = load_model(str(tmp_path / "base.pt"), write_config(tmp_path / "m.json"), delta=str(tmp_path / "delta.pt"))
    got, want = to_cpm_live_state_dict(loaded), to_cpm_live_state_dict(tuned)
    assert got.keys() == want.keys() and all(torch.allclose(got[k], want[k]) for k in got)
    assert not torch.equal(got["encoder.layers.0.ffn.ffn.w_out.weight"], model.encoder.layers[0].ffn.ffn.w_out.weight)


def test_a_delta_given_as_the_checkpoint_is_a_clear_error(model, tmp_path):
    torch.save({"lora": {}, "rank": 2, "alpha": 4.0, "targets": []}, tmp_path / "delta.pt")
    with pytest.raises(ModelLoadError, match="LoRA delta"):
        load_model(str(tmp_path / "delta.pt"), "tiny")


def test_a_config_that_does_not_fit_names_the_checkpoint(model, tmp_path):
    torch.save(to_cpm_live_state_dict(model), tmp_path / "in.pt")
    with pytest.raises(CheckpointMismatch, match="in.pt.*mask_modules"):
        load_model(str(tmp_path / "in.pt"), "tiny")


def test_missing_config_says_how_to_name_one(model, tmp_path):
    torch.save(to_cpm_live_state_dict(model), tmp_path / "in.pt")
    with pytest.raises(ModelLoadError, match="name the model config"):
        load_model(str(tmp_path / "in.pt"))
    with pytest.raises(ModelLoadError, match="neither a preset"):
        load_model(str(tmp_path / "in.pt"), "tiny-typo")


def test_pickled_code_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(1), "hook": SchemaError}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeCheckpoint, match="evil.pt: refused to load: it names schemas.loading.SchemaError"):
        load_model(str(tmp_path / "evil.pt"), "tiny")


def test_bee_export_command_writes_an_hf_folder_with_the_lora_merged(model, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    torch.save(to_cpm_live_state_dict(model), tmp_path / "base.pt")
    write_config(tmp_path / "base.json")
    tuned = CPMBee(CONFIG)
    add_lora(tuned, ["w_out"], rank=2, alpha=4.0)
    delta = {"lora": {k: torch.ones_like(v) for k, v in lora_state_dict(tuned).items()}, "rank": 2, "alpha": 4.0,
             "targets": ["w_out"]}  # fmt: skip
    torch.save(delta, tmp_path / "delta.pt")
    args = ["export", str(tmp_path / "base.pt"), "--format", "hf", str(tmp_path / "hf"), "--dtype", "bf16",
            "--merge-lora", str(tmp_path / "delta.pt")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    exported, _ = load_model(str(tmp_path / "hf"), dtype="bf16")
    merged, _ = load_model(str(tmp_path / "base.pt"), delta=str(tmp_path / "delta.pt"), dtype="bf16")
    assert same_weights(to_cpm_live_state_dict(exported), to_cpm_live_state_dict(merged))
    bad = CliRunner().invoke(app, ["export", str(tmp_path / "nothing.pt"), str(tmp_path / "x.pt")])
    assert bad.exit_code == 2 and "nothing.pt does not exist" in bad.output


def test_a_legacy_format_torch_file_loads_without_memory_mapping(model, tmp_path):
    torch.save(to_cpm_live_state_dict(model), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    loaded, _ = load_model(str(tmp_path / "old.pt"), write_config(tmp_path / "m.json"))
    assert same_weights(to_cpm_live_state_dict(loaded), to_cpm_live_state_dict(model))
