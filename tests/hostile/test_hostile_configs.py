"""Hostile run configs: a number that would exhaust memory, and a model that cannot run the
data's segment depth, are refused when the config is read, naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from schemas import SchemaError, load_run_config, preset
from trainer.launch import LaunchSpec, prepare_launch
from trainer.model import CPMBee

BASE = {
    "model": {"preset": "tiny"},
    "data": {"manifest": "train.json", "vocab": "vocab.txt", "batch_size": 2, "max_length": 64},
    "checkpoint": {"dir": "ckpt"},
    "max_steps": 10,
}


def write(tmp_path: Path, **sections: dict) -> Path:
    config = {key: value | sections.get(key, {}) if isinstance(value, dict) else value for key, value in BASE.items()}
    config.update({key: value for key, value in sections.items() if key not in BASE})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [("data", "batch_size", 10**12), ("data", "max_length", 10**9), ("data", "max_depth", 10**6),
     ("data", "prefetch", 10**6), ("optimizer", "grad_accumulation", 10**9), ("eval", "batches", 10**9),
     ("finetune", "lora_rank", 10**6), ("checkpoint", "keep_last", 10**9)],
)  # fmt: skip
def test_numbers_that_would_exhaust_memory_are_refused_naming_the_field(tmp_path: Path, section: str, field: str,
                                                                       value: int) -> None:  # fmt: skip
    extra = {"init_from": "x.pt"} if section == "finetune" else {}
    with pytest.raises(SchemaError, match=rf"run.yaml: {section}.{field}: Input should be less than or equal to"):
        load_run_config(write(tmp_path, **{section: {field: value, **extra}}))


def test_batch_size_1e12_from_yaml_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("batch_size: 2", "batch_size: 1e12"))
    with pytest.raises(SchemaError, match="data.batch_size"):
        load_run_config(path)


def test_the_tiny_preset_runs_the_default_max_depth(tmp_path: Path) -> None:
    run = load_run_config(write(tmp_path))
    assert run.data.max_depth == 16 and not run.model_problems(preset("tiny"))
    # the largest segment-relation bucket max_depth² indexes the model's bias table
    bias = CPMBee(preset("tiny")).position_bias
    bucket = torch.full((1, 1, 1), run.data.max_depth**2)
    bias(torch.zeros(1, 1, dtype=torch.int32), torch.zeros(1, 1, dtype=torch.int32), bucket)


def test_a_preset_too_small_for_max_depth_is_refused_when_the_config_is_read(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"data.max_depth 17 needs 289 segment-relation buckets .* set data.max_depth <= 16"):
        load_run_config(write(tmp_path, model={"preset": "cpm-bee-1b"}, data={"max_depth": 17}))


def test_a_model_config_file_too_small_for_max_depth_is_refused_before_launch(tmp_path: Path) -> None:
    small = preset("tiny").model_copy(update={"position_bias_num_segment_buckets": 32})
    (tmp_path / "model.json").write_text(json.dumps(small.model_dump(mode="json")))
    config = write(tmp_path, model={"preset": None, "config": "model.json"})
    config.write_text(config.read_text().replace("  preset: null\n", ""))
    with pytest.raises(SchemaError, match=r"run.yaml: data.max_depth 16 needs 256 .*=32: set data.max_depth <= 5"):
        prepare_launch(LaunchSpec(config, num_gpus=1))
