"""Both sides of a diff from files or git revisions (`A..B`, `A...B`, `A` vs the working tree)."""

import os

import pytest

from corpus.manifest.sources import load_file_side, load_revision_pair
from schemas import SchemaError
from manifest_fixtures import commit_json, entry, git, git_env, init_repo, write_json

V1 = [entry("lm", "wiki", nlines=10)]
V2 = [entry("lm", "wiki", nlines=10, weight=2.0)]
V3 = [entry("lm", "wiki", nlines=10, weight=3.0)]


@pytest.fixture
def repo(tmp_path, monkeypatch):
    # sources.py runs plain `git`: give it the test's isolated config.
    for key, value in git_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("GIT_") and k not in git_env(tmp_path)]:
        monkeypatch.delenv(key)
    repo = init_repo(tmp_path / "repo")
    commit_json(repo, "mix/datasets.json", V1, "v1")
    commit_json(repo, "mix/datasets.json", V2, "v2")
    return repo


def weights(side):
    return [e.weight for e in side.manifest]


def test_two_revisions(repo):
    old, new = load_revision_pair("HEAD~1..HEAD", repo / "mix" / "datasets.json")
    assert (weights(old), weights(new)) == ([1.0], [2.0])
    assert old.label == str(repo / "mix" / "datasets.json") + " @ HEAD~1"
    assert old.base_dir == (repo / "mix").resolve()


def test_revision_against_the_working_tree_from_another_folder(repo, monkeypatch):
    write_json(repo / "mix" / "datasets.json", V3)
    monkeypatch.chdir(repo.parent)
    old, new = load_revision_pair("HEAD", "repo/mix/datasets.json")
    assert (weights(old), weights(new)) == ([2.0], [3.0])
    assert new.label.endswith("(working tree)")


def test_three_dots_compare_against_the_merge_base(repo):
    git(repo, "checkout", "-q", "-b", "feature")
    commit_json(repo, "mix/datasets.json", V3, "feature")
    git(repo, "checkout", "-q", "main")
    commit_json(repo, "mix/datasets.json", V1, "main moves on")
    old, new = load_revision_pair("main...feature", repo / "mix" / "datasets.json")
    assert (weights(old), weights(new)) == ([2.0], [3.0])  # main's later change is not the PR's
    assert old.label.endswith("datasets.json @ merge base of main and feature")


def test_a_manifest_absent_at_the_old_revision_is_empty(repo):
    commit_json(repo, "mix/other.manifest.json", V1, "new manifest")
    old, new = load_revision_pair("HEAD~1..HEAD", repo / "mix" / "other.manifest.json")
    assert (len(old.manifest), old.exists, weights(new)) == (0, False, [1.0])


def test_absent_on_both_sides_is_an_error(repo):
    with pytest.raises(SchemaError, match="not in git at either side"):
        load_revision_pair("HEAD~1..HEAD", repo / "mix" / "nope.json")


def test_bad_revision_is_an_error_naming_it(repo):
    with pytest.raises(SchemaError, match="no-such-branch: not a git revision"):
        load_revision_pair("no-such-branch..HEAD", repo / "mix" / "datasets.json")


def test_invalid_manifest_at_a_revision_names_revision_file_and_field(repo):
    commit_json(repo, "mix/datasets.json", [{"dataset_name": "x", "task_name": "lm", "path": "p", "weight": -1}], "bad")
    with pytest.raises(SchemaError) as error:
        load_revision_pair("HEAD~1..HEAD", repo / "mix" / "datasets.json")
    assert "datasets.json @ HEAD: [0].weight: Input should be greater than or equal to 0" in str(error.value)


def test_file_side_names_file_and_field(tmp_path):
    path = write_json(tmp_path / "datasets.json", [{"dataset_name": "x", "path": "p"}])
    with pytest.raises(SchemaError, match=r"datasets.json: \[0\].task_name: Field required"):
        load_file_side(path)
