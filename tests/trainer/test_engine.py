"""The DeepSpeed config a run gets, and the precision it trains in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from schemas import load_run_config
from trainer.engine import INFRA_DIR, deepspeed_config, on_gpu, resolve_precision


@pytest.fixture
def run(tmp_path: Path):
    config = {
        "model": {"preset": "tiny"},
        "data": {"manifest": "m.json", "vocab": "v.txt", "batch_size": 3, "max_length": 64},
        "optimizer": {"lr": 2e-3, "grad_clip": 0.5, "grad_accumulation": 4},
        "checkpoint": {"dir": "ckpt"},
        "max_steps": 10,
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    return load_run_config(tmp_path / "run.yaml")


def test_every_precision_has_a_zero3_config() -> None:
    for precision in ("fp32", "bf16", "fp16"):
        assert json.loads((INFRA_DIR / f"zero3_{precision}.json").read_text())["zero_optimization"]["stage"] == 3


def test_the_run_config_fills_batch_accumulation_clipping_and_adamw(run) -> None:
    config = deepspeed_config(run, "fp32")
    assert config["train_micro_batch_size_per_gpu"] == 3 and config["gradient_accumulation_steps"] == 4
    assert config["gradient_clipping"] == 0.5
    assert config["optimizer"] == {"type": "AdamW", "params": {"lr": 2e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.01,
                                                                "torch_adam": not on_gpu()}}
    assert not config["bf16"]["enabled"] and not config["fp16"]["enabled"]


def test_fp16_uses_a_dynamic_loss_scale_starting_at_the_configured_power(run) -> None:
    fp16 = deepspeed_config(run, "fp16")["fp16"]
    assert fp16["enabled"] and fp16["loss_scale"] == 0 and fp16["initial_scale_power"] == 15
    assert fp16["hysteresis"] == 1 and fp16["loss_scale_window"] == 512  # BMTrain: halve at once, grow after 512


def test_a_deepspeed_json_may_not_set_what_the_run_config_owns(run, tmp_path: Path) -> None:
    own = tmp_path / "ds.json"
    own.write_text(json.dumps({"zero_optimization": {"stage": 3}, "gradient_clipping": 2.0}))
    with pytest.raises(ValueError, match="gradient_clipping belong in the run config"):
        deepspeed_config(run.model_copy(update={"deepspeed_config": str(own)}), "fp32")


def test_half_precision_is_refused_on_cpu(run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    assert resolve_precision(run, model_half=True) == "fp32"
    with pytest.raises(ValueError, match="precision 'bf16' needs a GPU"):
        resolve_precision(run.model_copy(update={"precision": "bf16"}), model_half=True)
