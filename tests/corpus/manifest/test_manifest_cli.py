"""`bee manifest ...` through the real `bee` app: output formats and exit codes (0 / 1 / 2)."""

import json
import os

import pytest
from typer.testing import CliRunner

from flows.cli import app
from manifest_fixtures import commit_json, cpm_bee_manifest, entry, git_env, init_repo, write_dataset, write_json

runner = CliRunner()
OLD = [entry("lm", "wiki", nlines=100, ntokens=1000), entry("lm", "news", nlines=100, ntokens=1000)]
NEW = [entry("lm", "wiki", nlines=100, ntokens=1000, weight=3.0), entry("lm", "news", nlines=100, ntokens=1000)]


def bee(*args):
    return runner.invoke(app, ["manifest", *map(str, args)])


@pytest.fixture
def pair(tmp_path):
    return write_json(tmp_path / "old.json", OLD), write_json(tmp_path / "new.json", NEW)


def test_diff_exits_1_on_changes_and_prints_the_table(pair):
    result = bee("diff", *pair)
    assert result.exit_code == 1, result.output
    assert "lm.wiki" in result.stdout and "+25.00 pp" in result.stdout
    assert "0 added, 0 removed, 1 changed, 1 unchanged; largest share movements: lm.news -25.00 pp, lm.wiki +25.00 pp" in result.stdout


def test_diff_exits_0_when_nothing_changed(pair):
    old, _ = pair
    result = bee("diff", old, old)
    assert result.exit_code == 0 and "no change" in result.stdout


def test_diff_markdown_and_json(pair):
    markdown = bee("diff", *pair, "--format", "markdown")
    assert markdown.exit_code == 1 and "| `lm.wiki` | ~ changed | 50.00% → 75.00% | **+25.00 pp** |" in markdown.stdout
    data = json.loads(bee("diff", *pair, "-f", "json").stdout)
    assert data["summary"]["changed"] == 1 and data["datasets"][0]["share_delta_pp"] == pytest.approx(25.0)


def test_diff_exits_2_naming_file_and_field(tmp_path, pair):
    bad = write_json(tmp_path / "bad.json", [{"dataset_name": "x", "task_name": "lm", "path": "p", "weight": "lots"}])
    result = bee("diff", pair[0], bad)
    assert result.exit_code == 2
    assert f"error: {bad}: [0].weight: Input should be a valid number" in result.stderr
    assert bee("diff", pair[0], tmp_path / "missing.json").exit_code == 2
    assert "give two manifest files" in bee("diff", pair[0]).stderr


def test_diff_of_cpm_bee_manifests_reads_meta_bin_or_says_unknown(tmp_path):
    old = cpm_bee_manifest()
    new = cpm_bee_manifest() + [entry("lm", "wiki")]
    write_dataset(tmp_path / "wiki", [50])
    result = bee("diff", write_json(tmp_path / "a.json", old), write_json(tmp_path / "b.json", new), "-f", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["shares_unknown"]["new"] == "nlines unknown for mlm.pretrain"
    wiki = data["datasets"][1]
    assert wiki["nlines"]["new"] == 50 and wiki["nlines"]["source_new"] == "meta.bin" and wiki["share_new_pct"] is None


def test_diff_rev(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("GIT_")]:
        monkeypatch.delenv(key)
    for key, value in git_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    repo = init_repo(tmp_path / "repo")
    commit_json(repo, "datasets.json", OLD, "v1")
    commit_json(repo, "datasets.json", NEW, "v2")
    path = repo / "datasets.json"
    assert bee("diff", "--rev", "HEAD~1..HEAD", path).exit_code == 1
    assert bee("diff", "--rev", "HEAD", path).exit_code == 0  # working tree == HEAD
    write_json(path, OLD)
    assert "lm.wiki" in bee("diff", "--rev", "HEAD", path, "-f", "markdown").stdout
    result = bee("diff", "--rev", "nope..HEAD", path)
    assert result.exit_code == 2 and "nope: not a git revision" in result.stderr
    assert bee("diff", "--rev", "HEAD", path, path).exit_code == 2


def test_show_lists_shares(tmp_path):
    result = bee("show", write_json(tmp_path / "m.json", NEW), "-f", "markdown")
    assert result.exit_code == 0 and "| `lm.wiki` | 3 | 75.00% | 75.00% | 100 |" in result.stdout
    assert bee("show", tmp_path / "none.json").exit_code == 2


def test_validate_exit_codes(tmp_path):
    write_dataset(tmp_path / "wiki", [5])
    good = write_json(tmp_path / "good.json", [entry("lm", "wiki")])
    assert bee("validate", good).exit_code == 0
    bad = write_json(tmp_path / "bad.json", [entry("lm", "wiki", weight=0), entry("lm", "gone")])
    result = bee("validate", bad)
    assert result.exit_code == 2
    assert "[0] lm.wiki: weight: must be > 0" in result.stderr and "[1] lm.gone: path:" in result.stderr
    assert f"{bad}: 2 problem(s)" in result.stderr


def test_textconv_prints_the_readable_form_and_survives_broken_files(tmp_path):
    result = bee("textconv", write_json(tmp_path / "m.json", NEW))
    assert result.exit_code == 0 and "[lm.wiki]\n  share                  75.00%" in result.stdout
    broken = tmp_path / "broken.json"
    broken.write_text('[{"dataset_name": 1}]\n')
    result = bee("textconv", broken)
    assert result.exit_code == 0
    assert result.stdout.startswith("# not a valid mixture manifest: ") and result.stdout.endswith('[{"dataset_name": 1}]\n')


def test_edits(tmp_path):
    path = write_json(tmp_path / "m.json", OLD)
    assert bee("set-weight", path, "lm.news", "0.5").exit_code == 0
    assert bee("add", path, "--dataset-name", "code", "--task-name", "lm", "--path", "code", "--weight", "2",
               "--incontext-weight", "0.5,0.5", "--transforms", '[{"text": "$code"}]').exit_code == 0
    assert bee("remove", path, "lm.wiki").exit_code == 0
    assert json.loads(path.read_text()) == [
        {"dataset_name": "news", "task_name": "lm", "weight": 0.5, "path": "news", "nlines": 100, "ntokens": 1000},
        {"dataset_name": "code", "task_name": "lm", "weight": 2.0, "path": "code",
         "incontext_weight": [0.5, 0.5], "transforms": [{"text": "$code"}]},
    ]
    assert bee("remove", path, "lm.wiki").exit_code == 2
    negative = bee("set-weight", path, "lm.news", "--", "-1")
    assert negative.exit_code == 2 and "[0]: weight: Input should be greater than or equal to 0" in negative.stderr
    assert bee("add", path, "--dataset-name", "code", "--task-name", "lm", "--path", "x").exit_code == 2
    assert bee("add", path, "--dataset-name", "t", "--task-name", "lm", "--path", "x", "--transforms", "t.py").exit_code == 0
    assert json.loads(path.read_text())[-1]["transforms"] == "t.py"
