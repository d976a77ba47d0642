"""The repository's .gitattributes plus `bee manifest textconv`: `git diff` shows the readable form."""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from manifest_fixtures import commit_json, entry, git, init_repo_with_shipped_attributes, write_json

REPO_ROOT = Path(__file__).resolve().parents[3]
OLD = [entry("lm", "wiki", nlines=100), entry("lm", "news", nlines=100, transforms=[{"text": "$text"}])]
NEW = [entry("lm", "wiki", nlines=100, weight=3.0), entry("lm", "news", nlines=100, transforms=[{"text": "$body"}])]


def textconv_command() -> str:
    """The quick-starting form the README documents beside `bee manifest textconv` (the same
    command without the rest of `bee`); `test_bee_and_module_forms_print_the_same` ties them."""
    return f"{shlex.quote(sys.executable)} -m corpus.manifest.cli textconv"


def test_bee_and_module_forms_print_the_same(tmp_path):
    bee = Path(sys.executable).parent / "bee"
    if not bee.exists():
        pytest.skip(f"no bee console script next to {sys.executable} (install the project)")
    manifest = write_json(tmp_path / "datasets.json", NEW)
    via_bee = subprocess.run([str(bee), "manifest", "textconv", str(manifest)], capture_output=True, text=True, check=True)
    via_module = subprocess.run(shlex.split(textconv_command()) + [str(manifest)], capture_output=True, text=True,
                                check=True, cwd=REPO_ROOT)
    assert via_bee.stdout == via_module.stdout and "[lm.wiki]" in via_bee.stdout


@pytest.fixture
def repo(tmp_path):
    repo = init_repo_with_shipped_attributes(tmp_path / "repo")
    commit_json(repo, "mix/datasets.json", OLD, "v1")
    commit_json(repo, "other.manifest.json", OLD, "v1 other")
    write_json(repo / "mix" / "datasets.json", NEW)
    write_json(repo / "other.manifest.json", NEW)
    return repo


def test_the_shipped_attributes_route_manifests_to_the_driver(repo):
    out = git(repo, "check-attr", "diff", "mix/datasets.json", "other.manifest.json", "notes.json")
    assert out.splitlines() == [
        "mix/datasets.json: diff: bee-manifest",
        "other.manifest.json: diff: bee-manifest",
        "notes.json: diff: unspecified",
    ]


def test_git_diff_shows_the_readable_form_with_the_driver_configured(repo):
    git(repo, "config", "diff.bee-manifest.textconv", textconv_command())
    git(repo, "config", "diff.bee-manifest.xfuncname", r"^\[.*\]$")
    out = git(repo, "diff", "--", "mix/datasets.json")
    changed = [line for line in out.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == [
        "-  share                  50.00%",
        "+  share                  75.00%",
        "-  weight                 1.0",
        "+  weight                 3.0",
        "-  share                  50.00%",
        "+  share                  25.00%",
        '-    - {"text": "$text"}',
        '+    - {"text": "$body"}',
    ]
    assert "bee-manifest" not in out and '"dataset_name"' not in out
    # history reads the same way: git log -p goes through the driver too
    git(repo, "commit", "-q", "-am", "v2")
    log = git(repo, "log", "-p", "-1", "--", "mix/datasets.json")
    assert "-  weight                 1.0\n+  weight                 3.0\n" in log
    # xfuncname: a hunk deep inside a dataset's block is headed by that dataset's name
    write_json(repo / "mix" / "datasets.json", [NEW[0], entry("lm", "news", nlines=100, transforms=[{"text": "$x"}])])
    hunk_headers = [line.split("@@")[-1].strip() for line in git(repo, "diff").splitlines() if line.startswith("@@ ")]
    assert hunk_headers == ["[lm.news]"]


def test_without_the_driver_git_shows_raw_json(repo):
    out = git(repo, "diff", "--", "other.manifest.json")
    assert any(line.startswith("+") and '"weight": 3.0' in line for line in out.splitlines())
    assert "share" not in out
