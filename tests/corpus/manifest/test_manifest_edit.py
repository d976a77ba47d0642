"""Edits by identity: only the edited entry changes, order and the other entries' text are kept."""

import json

import pytest

from corpus.manifest.edit import add_entry, remove_entry, set_weight
from corpus.manifest.store import read_manifest, write_manifest
from schemas import MixtureManifest, SchemaError
from manifest_fixtures import cpm_bee_manifest, entry, write_json

ENTRIES = [
    entry("lm", "a", nlines=1, fingerprints={"content": "c1"}, owner="team-a"),
    entry("lm", "b", weight=2.0, transforms="t.py"),
    entry("qa", "c"),
]


@pytest.fixture
def manifest_path(tmp_path):
    path = tmp_path / "datasets.json"
    write_manifest(path, MixtureManifest.model_validate(ENTRIES))
    return path


def _text_lines(path):
    return path.read_text().splitlines()


def test_set_weight_changes_one_line(manifest_path):
    before = _text_lines(manifest_path)
    set_weight(manifest_path, "lm.b", 0.5)
    after = _text_lines(manifest_path)
    changed = [(old, new) for old, new in zip(before, after) if old != new]
    assert len(before) == len(after) and changed == [('        "weight": 2.0,', '        "weight": 0.5,')]


def test_set_weight_on_an_entry_without_one_adds_just_that_key(tmp_path):
    path = write_json(tmp_path / "datasets.json", cpm_bee_manifest() + [entry("qa", "c")])
    set_weight(path, "qa.c", 3.0)
    data = json.loads(path.read_text())
    assert data[0] == cpm_bee_manifest()[0]
    assert data[1] == {"dataset_name": "c", "task_name": "qa", "weight": 3.0, "path": "c"}


def test_set_weight_rejects_unknown_datasets_and_bad_weights(manifest_path):
    with pytest.raises(SchemaError, match="no dataset 'lm.zzz'.*known: lm.a, lm.b, qa.c"):
        set_weight(manifest_path, "lm.zzz", 1.0)
    with pytest.raises(SchemaError, match=r"\[1\]: weight: Input should be greater than or equal to 0"):
        set_weight(manifest_path, "lm.b", -1.0)


def test_add_appends_and_refuses_duplicates(manifest_path):
    before = manifest_path.read_text()
    add_entry(manifest_path, {"dataset_name": "d", "task_name": "lm", "path": "d", "weight": 4.0})
    assert [e.identity for e in read_manifest(manifest_path)] == ["lm.a", "lm.b", "qa.c", "lm.d"]
    assert manifest_path.read_text().startswith(before[: before.rindex("}")])
    with pytest.raises(SchemaError, match="'lm.d' is already in the manifest"):
        add_entry(manifest_path, {"dataset_name": "d", "task_name": "lm", "path": "x"})


def test_add_creates_a_missing_file_and_validates_fields(tmp_path):
    path = tmp_path / "new" / "datasets.json"
    add_entry(path, {"dataset_name": "d", "task_name": "lm", "path": "d"})
    assert json.loads(path.read_text()) == [{"dataset_name": "d", "task_name": "lm", "path": "d"}]
    with pytest.raises(SchemaError, match="new entry: incontext_weight"):
        add_entry(path, {"dataset_name": "e", "task_name": "lm", "path": "e", "incontext_weight": []})


def test_remove_keeps_the_others_in_order(manifest_path):
    remove_entry(manifest_path, "lm.b")
    assert [e.identity for e in read_manifest(manifest_path)] == ["lm.a", "qa.c"]
    assert read_manifest(manifest_path).root[0].model_extra == {"owner": "team-a"}
    with pytest.raises(SchemaError, match="no dataset 'lm.b'"):
        remove_entry(manifest_path, "lm.b")
