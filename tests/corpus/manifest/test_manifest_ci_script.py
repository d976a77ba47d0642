"""infra/ci: the script that writes the pull-request comment, run for real on a temporary repo."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from manifest_fixtures import commit_json, entry, git, git_env, init_repo_with_shipped_attributes

REPO_ROOT = Path(__file__).resolve().parents[3]
SCRIPT = REPO_ROOT / "infra" / "ci" / "manifest-diff.sh"
WORKFLOW = REPO_ROOT / "infra" / "ci" / "manifest-diff.yml"
V1 = [entry("lm", "wiki", nlines=100), entry("lm", "news", nlines=100)]
V2 = [entry("lm", "wiki", nlines=100, weight=3.0), entry("lm", "news", nlines=100)]


@pytest.fixture
def repo(tmp_path):
    repo = init_repo_with_shipped_attributes(tmp_path / "repo")
    commit_json(repo, "mix/datasets.json", V1, "base")
    commit_json(repo, "eval.manifest.json", V1, "base eval")
    git(repo, "checkout", "-q", "-b", "pr")
    return repo


def run_script(repo, out):
    # The manifest group alone, without `bee`'s own start-up.
    env = {**git_env(repo.parent), "BEE_MANIFEST": f"{sys.executable} -m corpus.manifest.cli",
           "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(["bash", str(SCRIPT), "main", "pr", str(out)], cwd=repo / "mix", env=env,
                          capture_output=True, text=True)


def test_comment_has_one_section_per_changed_manifest(repo, tmp_path):
    commit_json(repo, "mix/datasets.json", V2, "reweight")
    commit_json(repo, "eval.manifest.json", V1[:1], "drop news from eval")
    commit_json(repo, "notes.json", {"not": "a manifest"}, "unrelated")
    result = run_script(repo, tmp_path / "comment.md")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "comment.md").read_text()
    assert text.count("### Mixture manifest: ") == 2
    assert "| `lm.wiki` | ~ changed | 50.00% → 75.00% | **+25.00 pp** |" in text
    assert "| `lm.news` | - removed | 50.00% → — | **-50.00 pp** |" in text
    assert "notes.json" not in text


def test_no_manifest_change_leaves_the_comment_empty(repo, tmp_path):
    commit_json(repo, "notes.json", {"not": "a manifest"}, "unrelated")
    result = run_script(repo, tmp_path / "comment.md")
    assert result.returncode == 0 and (tmp_path / "comment.md").read_text() == ""


def test_invalid_manifest_fails_with_its_error_in_the_comment(repo, tmp_path):
    commit_json(repo, "mix/datasets.json", [{"dataset_name": "x", "task_name": "lm", "path": "x", "weight": "a"}], "bad")
    result = run_script(repo, tmp_path / "comment.md")
    assert result.returncode == 2
    text = (tmp_path / "comment.md").read_text()
    assert "`mix/datasets.json` is invalid" in text and "[0].weight: Input should be a valid number" in text


def test_workflow_runs_the_script_and_posts_its_output():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = workflow["jobs"]["manifest-diff"]["steps"]
    commands = "\n".join(step.get("run", "") for step in steps)
    assert "infra/ci/manifest-diff.sh" in commands and "gh pr comment" in commands
    assert workflow["permissions"]["pull-requests"] == "write"
    assert os.access(SCRIPT, os.X_OK)
