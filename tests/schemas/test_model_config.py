import json

import pytest

from schemas import ModelConfig, SchemaError, load_file, preset


def test_official_10b_config_loads_unchanged(shared_cpm_bee):
    path = shared_cpm_bee / "cpm-bee-10b.json"
    config = load_file(ModelConfig, path)
    assert config.model_dump(exclude_unset=True) == json.loads(path.read_text())
    assert config == preset("cpm-bee-10b")


@pytest.mark.parametrize(
    ("name", "attention_layers", "ffn_layers", "attention_width", "dim_ff"),
    [
        ("cpm-bee-10b", 48, 48, 4096, 10240),
        ("cpm-bee-5b", 19, 24, 4096, 10240),
        ("cpm-bee-2b", 19, 24, 2048, 5120),
        ("cpm-bee-1b", 19, 24, 1280, 1024),
    ],
)
def test_presets_match_the_published_size_table(name, attention_layers, ffn_layers, attention_width, dim_ff):
    config = preset(name)
    assert config.num_attention_layers == attention_layers
    assert config.num_ffn_layers == ffn_layers
    assert config.num_heads * config.dim_head == attention_width
    assert config.dim_ff == dim_ff


def test_preset_returns_an_independent_copy():
    config = preset("tiny")
    config.num_layers = 99
    assert preset("tiny").num_layers != 99


def test_unknown_preset_lists_the_known_names():
    with pytest.raises(KeyError, match="cpm-bee-10b"):
        preset("cpm-bee-100b")


def test_mask_modules_must_cover_every_layer(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**preset("tiny").model_dump(), "mask_modules": [[True, False]]}))
    with pytest.raises(SchemaError, match="one per layer"):
        load_file(ModelConfig, path)


def test_error_names_file_field_and_expectation(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({**preset("tiny").model_dump(), "dim_model": "wide"}))
    with pytest.raises(SchemaError) as error:
        load_file(ModelConfig, path)
    message = str(error.value)
    assert str(path) in message and "dim_model" in message and "integer" in message


def test_unknown_key_is_rejected_by_name(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("vocab_size: 10\ndim_model: 8\ndim_ff: 8\nnum_layers: 1\nnum_heads: 1\ndim_head: 8\ndim_modle: 3\n")
    with pytest.raises(SchemaError, match="dim_modle"):
        load_file(ModelConfig, path)
