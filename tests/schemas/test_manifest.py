import json

import pytest

from corpus.manifest import read_manifest, upsert_entry, write_manifest
from schemas import DatasetEntry, MixtureManifest, SchemaError

# CPM-Bee's own src/datasets.json, as shipped.
CPM_BEE_MANIFEST = [
    {
        "dataset_name": "pretrain",
        "task_name": "mlm",
        "weight": 1.0,
        "path": "/path/to/dataset",
        "transforms": [
            {"answer": "$answer", "document": "$source"},
            {"answer": "$answer", "query": "$source"},
        ],
    },
    {"dataset_name": "ccpm", "task_name": "poem", "path": "ccpm", "transforms": "transforms/ccpm.py",
     "incontext_weight": [0.5, 0.5]},
]


def _load_like_cpm_bee(path):
    """CPM-Bee's loader: json.load, then its defaults for missing keys and the weight x lines rule."""
    config = json.loads(path.read_text())
    for c in config:
        c.setdefault("weight", 1.0)
        c.setdefault("transforms", [])
        c.setdefault("incontext_weight", [1.0])
        assert isinstance(c["path"], str) and isinstance(c["task_name"], str)
        assert isinstance(c["transforms"], (str, list))
        float(c["weight"]) * 1  # weight x lines must be numeric
    return config


def test_cpm_bee_manifest_round_trips_unchanged(tmp_path):
    source = tmp_path / "datasets.json"
    source.write_text(json.dumps(CPM_BEE_MANIFEST))
    manifest = read_manifest(source)
    assert json.loads(manifest.to_json()) == CPM_BEE_MANIFEST


def test_manifest_with_stats_still_loads_in_cpm_bee_loader(tmp_path):
    path = tmp_path / "datasets.json"
    entry = DatasetEntry(
        dataset_name="wiki", task_name="lm", path="data/wiki", weight=2.0, nlines=10, nbytes=100,
        ntokens=50, escaped=True, fingerprints={"content": "ab" * 32}, provenance={"inputs": ["raw/"]},
    )
    write_manifest(path, MixtureManifest([entry]))
    (loaded,) = _load_like_cpm_bee(path)
    assert loaded["weight"] == 2.0 and loaded["transforms"] == [] and loaded["incontext_weight"] == [1.0]
    assert read_manifest(path).root[0] == entry


def test_upsert_replaces_in_place_and_keeps_order(tmp_path):
    path = tmp_path / "datasets.json"
    for name in ["a", "b", "c"]:
        upsert_entry(path, DatasetEntry(dataset_name=name, task_name="lm", path=name))
    upsert_entry(path, DatasetEntry(dataset_name="b", task_name="lm", path="b2", weight=3))
    entries = list(read_manifest(path))
    assert [e.dataset_name for e in entries] == ["a", "b", "c"]
    assert entries[1].path == "b2" and entries[1].weight == 3


def test_duplicate_identity_is_an_error(tmp_path):
    path = tmp_path / "datasets.json"
    path.write_text(json.dumps([{"dataset_name": "a", "task_name": "t", "path": "x"}] * 2))
    with pytest.raises(SchemaError, match="t.a"):
        read_manifest(path)


def test_error_names_the_entry_and_field(tmp_path):
    path = tmp_path / "datasets.json"
    path.write_text(json.dumps([{"dataset_name": "a", "task_name": "t", "path": "x", "weight": -1}]))
    with pytest.raises(SchemaError) as error:
        read_manifest(path)
    assert f"{path}: [0].weight: Input should be greater than or equal to 0" in str(error.value)


def test_broken_json_names_the_line(tmp_path):
    path = tmp_path / "datasets.json"
    path.write_text('[\n  {"dataset_name": "a",\n  oops}\n]')
    with pytest.raises(SchemaError, match="line 3"):
        read_manifest(path)


def test_crash_while_writing_leaves_old_manifest(tmp_path, monkeypatch):
    path = tmp_path / "datasets.json"
    upsert_entry(path, DatasetEntry(dataset_name="a", task_name="t", path="x"))
    before = path.read_bytes()

    def failing_replace(*args):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", failing_replace)
    with pytest.raises(OSError):
        upsert_entry(path, DatasetEntry(dataset_name="b", task_name="t", path="y"))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["datasets.json"]
