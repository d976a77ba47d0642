"""`bee manifest show/diff --run`: what a run draws from each dataset (samples, tokens, epochs)."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from corpus.manifest.lines import LineCount
from corpus.manifest.run_draws import RunShape, expected_samples_per_instance, measured_fill, run_draws
from flows.cli import app
from manifest_fixtures import entry, write_json
from schemas import MixtureManifest

runner = CliRunner()
# 100 tokens a sample in both; weight x nlines equal, so each dataset gets half the instances.
MIXTURE = [entry("lm", "wiki", nlines=1000, ntokens=100_000), entry("lm", "small", nlines=10, ntokens=1000, weight=100.0)]
# 100 steps x 4 rows x 1000 tokens = 400k tokens = 4,000 instances of 100 tokens.
SHAPE = RunShape(max_steps=100, rows_per_step=4, max_length=1000)


def _draws(entries, shape=SHAPE, **kwargs):
    manifest = MixtureManifest.model_validate(entries)
    counts = {e.identity: LineCount(e.nlines, "manifest") for e in manifest}
    return run_draws(manifest, counts, shape, **kwargs)


def test_samples_tokens_and_epochs_follow_weights_lines_and_tokens():
    draws = _draws(MIXTURE)
    wiki, small = draws.get("lm.wiki"), draws.get("lm.small")
    assert wiki.share == small.share == pytest.approx(0.5)
    assert wiki.samples == pytest.approx(2000) and wiki.tokens == pytest.approx(200_000) and wiki.epochs == pytest.approx(2.0)
    assert small.epochs == pytest.approx(200.0) and small.flag == "repeated" and wiki.flag is None


def test_incontext_samples_and_fill_change_the_draws():
    assert expected_samples_per_instance([1.0]) == 1.0
    assert expected_samples_per_instance([1.0, 1.0, 2.0]) == pytest.approx(1 + (1 + 4) / 4)
    entries = [entry("lm", "wiki", nlines=1000, ntokens=100_000, incontext_weight=[1.0, 1.0])]
    # 1.5 samples of 100 tokens an instance: 400k tokens x fill 0.75 / 150 = 2,000 instances, 3,000 samples
    draws = _draws(entries, SHAPE.with_fill(0.75, "given"))
    assert draws.get("lm.wiki").samples == pytest.approx(3000) and draws.get("lm.wiki").epochs == pytest.approx(3.0)


def test_a_dataset_seen_less_than_once_is_flagged_and_unknown_tokens_say_why():
    big = [entry("lm", "wiki", nlines=1_000_000, ntokens=100_000_000)]
    assert _draws(big).get("lm.wiki").flag == "partly seen"
    unknown = _draws([entry("lm", "wiki", nlines=1000), entry("lm", "news", nlines=10, ntokens=10)])
    assert unknown.get("lm.wiki").epochs is None and "ntokens unknown for lm.wiki" in unknown.why_unknown


def test_measured_fill_reads_train_records(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(r) for r in [
        {"kind": "train", "step": 1, "tokens": 300}, {"kind": "eval", "step": 1}, {"kind": "train", "step": 2, "tokens": 500},
    ]) + "\n")
    assert measured_fill(metrics, 1000) == pytest.approx(0.4)
    metrics.write_text(json.dumps({"kind": "eval"}) + "\n")
    with pytest.raises(ValueError, match="no training steps"):
        measured_fill(metrics, 1000)


@pytest.fixture
def run_yaml(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"preset": "tiny"}, "max_steps": 100, "checkpoint": {"dir": "ckpt"},
        "data": {"manifest": "datasets.json", "vocab": "vocab.txt", "batch_size": 2, "max_length": 1000},
        "optimizer": {"grad_accumulation": 2},
    }))
    return path


def test_show_and_diff_with_run_in_every_format(tmp_path, run_yaml):
    new = write_json(tmp_path / "new.json", MIXTURE)
    old = write_json(tmp_path / "old.json", [MIXTURE[0], {**MIXTURE[1], "weight": 1.0}])
    shown = runner.invoke(app, ["manifest", "show", str(new), "--run", str(run_yaml)])
    assert shown.exit_code == 0, shown.output
    assert "100 steps × 4 rows × 1,000 tokens" in shown.stdout and "repeated 200.0×" in shown.stdout
    data = json.loads(runner.invoke(app, ["manifest", "show", str(new), "--run", str(run_yaml), "--world-size", "2", "-f", "json"]).stdout)
    assert data["run"]["rows_per_step"] == 8 and data["run"]["datasets"]["lm.small"]["epochs"] == pytest.approx(400.0)

    diff = runner.invoke(app, ["manifest", "diff", str(old), str(new), "--run", str(run_yaml), "-f", "markdown"])
    assert diff.exit_code == 1, diff.output
    # old: wiki gets 1000/1010 of 4,000 instances; new: half of them
    assert "| `lm.wiki` | 3.96 → 2.00 |" in diff.stdout and "**repeated 200.0× (> 4)**" in diff.stdout
    bad = runner.invoke(app, ["manifest", "show", str(new), "--run", str(tmp_path / "missing.yaml")])
    assert bad.exit_code == 2 and "missing.yaml" in bad.stderr
