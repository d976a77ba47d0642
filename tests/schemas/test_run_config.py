"""RunConfig: YAML in, paths made absolute, overrides from the command line, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from schemas import SchemaError, load_run_config

MINIMAL = {
    "model": {"preset": "tiny"},
    "data": {"manifest": "data/train.json", "vocab": "vocab.txt", "batch_size": 2, "max_length": 64},
    "checkpoint": {"dir": "ckpt"},
    "max_steps": 10,
}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_relative_paths_are_resolved_against_the_config_folder(tmp_path: Path) -> None:
    run = load_run_config(write(tmp_path, MINIMAL))
    assert run.data.manifest == str(tmp_path / "data" / "train.json")
    assert run.checkpoint.dir == str(tmp_path / "ckpt")
    assert run.model.resolve().dim_model == 64
    assert run.schedule.kind == "noam" and run.zero_stage == 3 and run.precision == "auto"


def test_overrides_set_nested_fields_with_yaml_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = load_run_config(
        write(tmp_path, MINIMAL),
        ["optimizer.lr=3e-4", "schedule.kind=cosine", "optimizer.betas=[0.9, 0.99]", "checkpoint.dir=elsewhere"],
    )
    assert run.optimizer.lr == 3e-4 and run.schedule.kind == "cosine" and run.optimizer.betas == (0.9, 0.99)
    assert run.checkpoint.dir == str(tmp_path / "elsewhere")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"preset": "tiny", "config": "m.json"}}, "exactly one of model.preset and model.config"),
        ({"model": {"preset": "huge"}}, "unknown model preset 'huge'"),
        ({"max_steps": 0}, "max_steps: Input should be greater than or equal to 1"),
        ({"eval": {"patience": 2}}, "early stop needs a held-out manifest"),
        ({"optimiser": {}}, "optimiser: Extra inputs are not permitted"),
        ({"max_stpes": 3}, "max_stpes: Extra inputs are not permitted"),  # a misspelt key stays an error
        ({"epochs": 2}, "exactly one of max_steps and epochs"),
        ({"max_steps": None, "epochs": 2}, "epochs is for fine-tuning"),
        ({"max_steps": None, "epochs": 2, "finetune": {"init_from": "m.pt"}, "schedule": {"kind": "cosine"}},
         "needs schedule.decay_steps"),
        ({"start_step": 10}, "start_step 10 is not below max_steps 10"),
        ({"init_from": "a.pt", "finetune": {"init_from": "b.pt"}}, "a fine-tuning run names its weights in finetune.init_from"),
    ],
)
def test_bad_configs_name_the_field(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(SchemaError, match=message) as error:
        load_run_config(write(tmp_path, MINIMAL | change))
    assert str(tmp_path / "run.yaml") in str(error.value)


def test_an_override_without_equals_sign_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="expected key.sub=value"):
        load_run_config(write(tmp_path, MINIMAL), ["optimizer.lr"])


def test_init_from_is_a_path_relative_to_the_config(tmp_path: Path) -> None:
    run = load_run_config(write(tmp_path, MINIMAL | {"init_from": "bee.pt", "start_step": 3}))
    assert run.init_from == str(tmp_path / "bee.pt") and run.start_step == 3


def test_model_config_may_be_an_hf_port_config_json(tmp_path: Path) -> None:
    import json

    from schemas import preset
    from schemas.model_config import to_hf_config

    (tmp_path / "config.json").write_text(json.dumps(to_hf_config(preset("tiny"))))
    run = load_run_config(write(tmp_path, MINIMAL | {"model": {"config": "config.json"}}))
    assert run.model.resolve() == preset("tiny")
