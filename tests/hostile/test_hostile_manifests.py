"""Hostile manifests: non-finite weights are refused everywhere a manifest is read, and
`validate` tells the reviewer which transforms are code that training will run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corpus.dataset import build_dataset
from corpus.manifest import read_manifest
from corpus.manifest.cli import EXIT_INVALID, app
from corpus.manifest.edit import set_weight
from schemas import SchemaError

runner = CliRunner()


def write_manifest(tmp_path: Path, **entry_fields: object) -> Path:
    with build_dataset(tmp_path / "ds", "part-0", block_size=256) as writer:
        writer.write({"text": "a"})
    entry = {"dataset_name": "ds", "task_name": "t", "path": "ds", "weight": 1.0} | entry_fields
    path = tmp_path / "datasets.json"
    # json.dumps writes Infinity / NaN as CPM-Bee's json.load reads them
    path.write_text(json.dumps([entry]), encoding="utf-8")
    return path


@pytest.mark.parametrize("weight", [float("inf"), float("-inf"), float("nan"), -1.0])
def test_a_non_finite_or_negative_weight_is_refused_by_validate_show_and_the_trainer(tmp_path: Path, weight: float) -> None:
    manifest = write_manifest(tmp_path, weight=weight)
    result = runner.invoke(app, ["validate", str(manifest)])
    assert result.exit_code == EXIT_INVALID and "weight" in result.output and "ok" not in result.output
    shown = runner.invoke(app, ["show", str(manifest)])
    assert shown.exit_code == EXIT_INVALID and "nan%" not in shown.output and "weight" in shown.output
    with pytest.raises(SchemaError, match=r"datasets.json.*weight"):
        read_manifest(manifest)  # what trainer.mixture reads the manifest with


@pytest.mark.parametrize("incontext", [[float("nan")], [1.0, float("inf")]])
def test_non_finite_incontext_weights_are_refused(tmp_path: Path, incontext: list[float]) -> None:
    with pytest.raises(SchemaError, match="incontext_weight"):
        read_manifest(write_manifest(tmp_path, incontext_weight=incontext))


def test_set_weight_refuses_infinity(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    with pytest.raises(SchemaError, match="weight"):
        set_weight(manifest, "t.ds", float("inf"))
    assert json.loads(manifest.read_text())[0]["weight"] == 1.0


def test_validate_lists_transform_scripts_as_code_training_will_run(tmp_path: Path) -> None:
    (tmp_path / "transform.py").write_text("def transform(data, num_sample, r):\n    return data\n")
    manifest = write_manifest(tmp_path, transforms="transform.py")
    result = runner.invoke(app, ["validate", str(manifest)])
    assert result.exit_code == 0, result.output
    assert "1 transform script(s) are Python code that training will import and run" in result.output
    assert f"t.ds: {tmp_path / 'transform.py'}" in result.output


def test_validate_says_nothing_about_code_for_field_mappings(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, transforms=[{"input": "$text"}])
    result = runner.invoke(app, ["validate", str(manifest)])
    assert result.exit_code == 0 and "Python code" not in result.output
