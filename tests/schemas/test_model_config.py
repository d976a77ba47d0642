import json

import pytest

from schemas import ModelConfig, SchemaError, load_file, load_model_config, preset
from schemas.model_config import to_hf_config


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


# ---- configs from elsewhere: CPM-Bee's files with foreign keys, the HF port's config.json ----


def test_cpm_bee_config_with_int4_loads_and_notes_the_ignored_key(tmp_path, caplog):
    # CPM-Bee's src/config/cpm-bee-10b.json as it was published first (with "int4": false)
    path = tmp_path / "cpm-bee-10b.json"
    path.write_text(json.dumps({**preset("cpm-bee-10b").model_dump(exclude_defaults=True), "half": True, "int4": False}))
    with caplog.at_level("WARNING"):
        config = load_model_config(path)
    assert config == preset("cpm-bee-10b")
    notes = [record.getMessage() for record in caplog.records]
    assert len(notes) == 1 and str(path) in notes[0] and "int4" in notes[0]


def test_misspelt_key_of_a_cpm_bee_config_stays_an_error(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({**preset("tiny").model_dump(), "dim_modle": 64}))
    with pytest.raises(SchemaError, match="dim_modle"):
        load_model_config(path)


def test_hf_port_config_json_loads_with_its_field_names(tmp_path, caplog):
    hf = {
        "architectures": ["CpmBeeForCausalLM"], "model_type": "cpmbee", "vocab_size": 86583, "hidden_size": 4096,
        "num_attention_heads": 32, "dim_head": 128, "dim_ff": 10240, "num_hidden_layers": 48, "dropout_p": 0.0,
        "position_bias_num_buckets": 256, "position_bias_num_segment_buckets": 256, "position_bias_max_distance": 2048,
        "eps": 1e-6, "init_std": 1.0, "use_cache": True, "distance_scale": 16, "mask_modules": None, "half": True,
        "torch_dtype": "float16", "transformers_version": "4.31.0",
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(hf))
    with caplog.at_level("WARNING"):
        config = load_model_config(path)
    assert config == preset("cpm-bee-10b")
    assert "transformers_version" in caplog.records[0].getMessage()


def test_hf_config_left_out_fields_take_the_ports_defaults(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "cpmbee", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100}))
    config = load_model_config(path)
    assert (config.position_bias_num_segment_buckets, config.half, config.num_heads) == (32, False, 64)


def test_hf_config_round_trips_through_to_hf_config(tmp_path):
    for name in ("tiny", "cpm-bee-2b"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(to_hf_config(preset(name))))
        assert load_model_config(path) == preset(name)


def test_a_rotary_scale_other_than_cpm_bees_is_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**to_hf_config(preset("tiny")), "distance_scale": 8}))
    with pytest.raises(SchemaError, match="distance_scale"):
        load_model_config(path)
