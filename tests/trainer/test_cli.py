"""`bee train`: builds the documented deepspeed command; a bad config fails before anything starts."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from flows.cli import app

CONFIG = {
    "model": {"preset": "tiny"},
    "data": {"manifest": "m.json", "vocab": "v.txt", "batch_size": 2, "max_length": 64},
    "checkpoint": {"dir": "ckpt"},
    "max_steps": 3,
}


def test_print_command_shows_the_deepspeed_launch(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    result = CliRunner().invoke(
        app, ["train", "pretrain", str(config), "--gpus", "2", "--resume", "--set", "max_steps=5", "--print-command"]
    )
    assert result.exit_code == 0, result.output
    deepspeed = str(Path(sys.executable).parent / "deepspeed")
    assert result.output.strip() == f"{deepspeed} --num_gpus 2 --module trainer.pretrain --config {config} --resume --set max_steps=5"


def test_a_bad_config_exits_2_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(CONFIG | {"max_steps": -1}))
    result = CliRunner().invoke(app, ["train", "pretrain", str(config), "--print-command"])
    assert result.exit_code == 2 and "max_steps" in result.output


def test_finetune_needs_a_finetune_section(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    result = CliRunner().invoke(app, ["train", "finetune", str(config), "--print-command"])
    assert result.exit_code == 2 and "finetune:" in result.output
