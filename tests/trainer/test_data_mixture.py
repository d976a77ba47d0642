"""Specification of `trainer.mixture`: which dataset feeds the next instance, and manifest reloads."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from corpus.dataset import build_dataset
from mixture_files import make_dataset, write_manifest
from trainer.mixture import Mixture


def make_counted_dataset(root: Path, name: str, n: int, block_size: int = 512) -> None:
    make_dataset(root, name, [{"text": f"{name} {i}", "<ans>": "bee"} for i in range(n)], block_size)


@pytest.fixture
def two_datasets(tmp_path) -> Path:
    make_counted_dataset(tmp_path, "a", 300)
    make_counted_dataset(tmp_path, "b", 100)
    manifest = tmp_path / "datasets.json"
    write_manifest(
        manifest,
        [
            {"dataset_name": "a", "task_name": "lm", "path": "a", "weight": 1, "ntokens": 1000},
            {"dataset_name": "b", "task_name": "qa", "path": "b", "weight": 2, "ntokens": 3000},
        ],
    )
    return manifest


def test_a_dataset_is_drawn_with_probability_proportional_to_weight_times_lines(two_datasets):
    mixture = Mixture(two_datasets)
    assert mixture.probabilities == pytest.approx({"lm.a": 300 / 500, "qa.b": 200 / 500})
    rng = np.random.default_rng(0)
    counts = Counter(mixture.choose(rng).identity for _ in range(4000))
    assert counts["lm.a"] / 4000 == pytest.approx(0.6, abs=0.03)


def test_weighting_by_tokens_uses_the_manifest_token_counts(two_datasets, tmp_path):
    assert Mixture(two_datasets, weight_by="tokens").probabilities == pytest.approx({"lm.a": 1 / 7, "qa.b": 6 / 7})
    write_manifest(two_datasets, [{"dataset_name": "a", "task_name": "lm", "path": "a"}])
    with pytest.raises(ValueError, match="lm.a has no ntokens"):
        Mixture(two_datasets, weight_by="tokens")


def test_a_mixture_with_nothing_to_sample_is_an_error(two_datasets):
    write_manifest(two_datasets, [{"dataset_name": "a", "task_name": "lm", "path": "a", "weight": 0}])
    with pytest.raises(ValueError, match="no dataset has weight x lines > 0"):
        Mixture(two_datasets)


def test_paths_are_relative_to_the_manifest_and_transform_scripts_too(tmp_path):
    make_counted_dataset(tmp_path / "data", "a", 10)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "t.py").write_text("def transform(data, num_sample, r):\n    return data\n")
    manifest = tmp_path / "conf" / "datasets.json"
    write_manifest(manifest, [{"dataset_name": "a", "task_name": "lm", "path": "../data/a", "transforms": "t.py"}])
    source = Mixture(manifest).sources[0]
    assert source.path.resolve() == (tmp_path / "data" / "a").resolve()
    assert source.transform.script.path.resolve() == (tmp_path / "conf" / "t.py").resolve()


def test_a_changed_manifest_reweights_keeps_readers_opens_new_and_drops_removed(two_datasets, tmp_path):
    mixture = Mixture(two_datasets)
    reader_a = mixture.sources[0].reader
    first = [reader_a.read() for _ in range(3)]
    assert mixture.refresh() is False  # unchanged file: nothing to do

    make_counted_dataset(tmp_path, "c", 50)
    write_manifest(
        two_datasets,
        [
            {"dataset_name": "c", "task_name": "lm", "path": "c", "weight": 2},
            {"dataset_name": "a", "task_name": "lm", "path": "a", "weight": 1, "incontext_weight": [0, 1]},
        ],
    )
    assert mixture.refresh() is True
    assert [s.identity for s in mixture.sources] == ["lm.c", "lm.a"]
    assert mixture.probabilities == pytest.approx({"lm.c": 100 / 400, "lm.a": 300 / 400})
    source_a = mixture.sources[1]
    assert source_a.reader is reader_a  # same reader: reading goes on where it was
    assert source_a.incontext_p.tolist() == [0.0, 1.0]
    assert reader_a.read() not in first


def test_a_broken_manifest_edit_keeps_the_current_mixture(two_datasets, caplog):
    mixture = Mixture(two_datasets)
    two_datasets.write_text("[{\"dataset_name\": ", encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        assert mixture.refresh() is False
    assert "cannot be used" in caplog.text
    assert [s.identity for s in mixture.sources] == ["lm.a", "qa.b"]
    write_manifest(two_datasets, [{"dataset_name": "b", "task_name": "qa", "path": "b"}])
    assert mixture.refresh() is True  # the next good edit is taken
    assert [s.identity for s in mixture.sources] == ["qa.b"]


def test_a_dataset_that_grows_is_reweighted(two_datasets, tmp_path):
    mixture = Mixture(two_datasets)
    with build_dataset(tmp_path / "b", "part-0001", block_size=512) as writer:
        for i in range(200):
            writer.write({"text": f"more {i}"})
    rng = np.random.default_rng(0)
    for source in mixture.sources:  # the readers notice meta.bin when they next fetch a block
        for _ in range(40):
            source.reader.read()
    for _ in range(20):
        mixture.choose(rng)
    assert mixture.probabilities == pytest.approx({"lm.a": 300 / 900, "qa.b": 600 / 900})


def test_each_rank_reads_its_own_blocks(two_datasets):
    ranks = [Mixture(two_datasets, rank=r, world_size=2) for r in (0, 1)]
    seen = [{ranks[r].sources[0].reader.read()["text"] for _ in range(40)} for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 40
    assert not seen[0] & seen[1]


def test_reader_positions_round_trip_by_dataset_identity(two_datasets):
    mixture = Mixture(two_datasets, seed=3)
    for _ in range(7):
        mixture.sources[0].reader.read()
    state = mixture.state_dict()
    expected = [mixture.sources[0].reader.read() for _ in range(5)]
    write_manifest(two_datasets, [{"dataset_name": "a", "task_name": "lm", "path": "a"}, {"dataset_name": "new", "task_name": "lm", "path": "b"}])
    resumed = Mixture(two_datasets, seed=3)
    assert resumed.load_state_dict(state) == ["lm.new"]  # no saved position: starts fresh
    assert [resumed.sources[0].reader.read() for _ in range(5)] == expected


def test_an_edit_naming_a_missing_dataset_changes_nothing(two_datasets, caplog):
    mixture = Mixture(two_datasets)
    write_manifest(
        two_datasets,
        [{"dataset_name": "a", "task_name": "lm", "path": "a", "weight": 5}, {"dataset_name": "gone", "task_name": "lm", "path": "nowhere"}],
    )
    with caplog.at_level(logging.ERROR):
        assert mixture.refresh() is False
    assert mixture.probabilities == pytest.approx({"lm.a": 0.6, "qa.b": 0.4})  # not even the new weight


def test_a_rank_without_blocks_of_a_dataset_does_not_draw_it(tmp_path):
    make_counted_dataset(tmp_path, "small", 3, block_size=1 << 16)  # one block: rank 1 of 2 gets none
    make_counted_dataset(tmp_path, "large", 300)
    manifest = tmp_path / "datasets.json"
    write_manifest(manifest, [{"dataset_name": "small", "task_name": "t", "path": "small"},
                              {"dataset_name": "large", "task_name": "t", "path": "large"}])
    assert Mixture(manifest, rank=0, world_size=2).probabilities["t.small"] > 0
    assert Mixture(manifest, rank=1, world_size=2).probabilities == pytest.approx({"t.small": 0.0, "t.large": 1.0})


def test_start_up_refuses_a_transform_that_escapes_an_escaped_dataset(tmp_path):
    from corpus.manifest.transform_script import TransformScriptError

    with build_dataset(tmp_path / "wiki", "part-0000", extra_meta={"escaped": True}) as writer:
        for i in range(5):
            writer.write({"text": f"if a << b then {i}", "id": i})
    (tmp_path / "t.py").write_text(
        "def transform(data, num_sample, r):\n    return {'input': '', '<ans>': data['text'].replace('<', '<<')}\n")
    manifest = tmp_path / "datasets.json"
    entry = {"dataset_name": "wiki", "task_name": "lm", "path": "wiki", "transforms": "t.py", "escaped": True}
    write_manifest(manifest, [entry])
    with pytest.raises(TransformScriptError, match=r"lm\.wiki: .*escapes again.*<<<<"):
        Mixture(manifest)
    write_manifest(manifest, [{**entry, "escaped": False}])
    assert Mixture(manifest).sources[0].identity == "lm.wiki"
