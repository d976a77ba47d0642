"""Re-tokenizing a mixture manifest (the scheduled flow's function) and the `bee tokenize` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corpus.dataset import build_dataset
from corpus.manifest import read_manifest, write_manifest
from flows.cli import app
from schemas import DatasetEntry, Fingerprints, MixtureManifest
from tokenization.retokenize import RetokenizeReport, retokenize_manifest
from tokenization.token_shards import SHARDS_MANIFEST
from tokenization.vocab import file_fingerprint
from tokenization.vocab_build import VocabBuildConfig, build_vocab_file

TEXTS = ["the cat sat on the mat", "机器学习让计算机从数据中学习", "a dog and a cat"]


@pytest.fixture(scope="module")
def vocabs(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("vocab")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(TEXTS * 3) + "\n", encoding="utf-8")
    build_vocab_file([corpus], folder / "a.txt", VocabBuildConfig(size=100))
    build_vocab_file([corpus], folder / "b.txt", VocabBuildConfig(size=50))
    return folder / "a.txt", folder / "b.txt"


def _dataset(path: Path, files: dict[str, list]) -> None:
    for name, records in files.items():
        with build_dataset(path, name, block_size=4096, extra_meta={"escaped": True}) as writer:
            for record in records:
                writer.write(record)


@pytest.fixture
def manifest(tmp_path) -> Path:
    _dataset(tmp_path / "data" / "wiki", {"p0": [{"text": t} for t in TEXTS], "p1": [{"text": "cat"}] * 4})
    _dataset(tmp_path / "data" / "qa", {"p0": [{"question": "cat?", "<ans>": "yes"}] * 2})
    entries = [
        DatasetEntry(dataset_name="wiki", task_name="lm", path="data/wiki", nlines=7, fingerprints=Fingerprints(content="c1")),
        DatasetEntry(dataset_name="qa", task_name="qa", path="data/qa", weight=2.0),
    ]
    path = tmp_path / "datasets.json"
    write_manifest(path, MixtureManifest(entries))
    return path


def test_every_dataset_gets_shards_and_token_statistics_in_its_entry(manifest, vocabs):
    report = retokenize_manifest(manifest, vocabs[0])
    assert isinstance(report, RetokenizeReport) and report.ok
    assert [(d.identity, d.redone) for d in report.datasets] == [("lm.wiki", ["p0", "p1"]), ("qa.qa", ["p0"])]
    entries = {e.identity: e for e in read_manifest(manifest)}
    wiki = entries["lm.wiki"]
    assert wiki.ntokens == report.datasets[0].stats.ntokens > 0
    assert wiki.fingerprints.vocab == file_fingerprint(vocabs[0])
    assert wiki.fingerprints.content == "c1"  # what was there is kept
    assert wiki.model_extra["token_stats"]["nrecords"] == 7
    assert set(wiki.model_extra["token_stats"]["length"]) == {"min", "p50", "p90", "p99", "max", "mean"}
    assert wiki.model_extra["token_shards"] == "data/wiki/token-shards"
    assert (manifest.parent / "data/wiki/token-shards" / SHARDS_MANIFEST).is_file()
    assert entries["qa.qa"].weight == 2.0 and report.ntokens == wiki.ntokens + entries["qa.qa"].ntokens


def test_manifest_stays_loadable_by_cpm_bee_style_readers(manifest, vocabs):
    retokenize_manifest(manifest, vocabs[0])
    raw = json.loads(manifest.read_text(encoding="utf-8"))
    for entry in raw:  # CPM-Bee's loader reads these keys and ignores the rest
        assert {"dataset_name", "task_name", "path"} <= set(entry)
    assert [e["dataset_name"] for e in raw] == ["wiki", "qa"]


def test_a_second_run_redoes_nothing_and_a_new_vocab_redoes_everything(manifest, vocabs):
    retokenize_manifest(manifest, vocabs[0])
    again = retokenize_manifest(manifest, vocabs[0])
    assert again.shards_redone == 0 and [d.fresh for d in again.datasets] == [["p0", "p1"], ["p0"]]
    changed = retokenize_manifest(manifest, vocabs[1])
    assert changed.shards_redone == 3
    assert {e.fingerprints.vocab for e in read_manifest(manifest)} == {file_fingerprint(vocabs[1])}


def test_only_the_dataset_whose_data_changed_is_redone(manifest, vocabs):
    retokenize_manifest(manifest, vocabs[0])
    _dataset(manifest.parent / "data" / "qa", {"p1": [{"question": "dog?", "<ans>": "no"}]})
    report = retokenize_manifest(manifest, vocabs[0])
    assert [(d.identity, d.redone) for d in report.datasets] == [("lm.wiki", []), ("qa.qa", ["p1"])]
    assert {e.identity: e.model_extra["token_stats"]["nrecords"] for e in read_manifest(manifest)}["qa.qa"] == 3


def test_a_broken_dataset_is_reported_and_the_others_are_done(manifest, vocabs):
    entries = list(read_manifest(manifest))
    entries.append(DatasetEntry(dataset_name="gone", task_name="lm", path="data/gone"))
    write_manifest(manifest, MixtureManifest(entries))
    report = retokenize_manifest(manifest, vocabs[0])
    assert not report.ok and list(report.failed) == ["lm.gone"] and "meta.bin" in report.failed["lm.gone"]
    assert [d.identity for d in report.datasets] == ["lm.wiki", "qa.qa"]
    assert {e.identity: e.ntokens for e in read_manifest(manifest)}["lm.gone"] is None


def test_bee_tokenize_a_dataset_prints_its_statistics(manifest, vocabs, tmp_path):
    dataset = manifest.parent / "data" / "wiki"
    runner = CliRunner()
    result = runner.invoke(app, ["tokenize", str(dataset), "--vocab", str(vocabs[0]), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "2 redone, 0 fresh" in result.output and "unknown-token rate" in result.output
    again = runner.invoke(app, ["tokenize", str(dataset), "--vocab", str(vocabs[0]), "-o", str(tmp_path / "out")])
    assert "0 redone, 2 fresh" in again.output


def test_bee_tokenize_a_manifest_updates_every_entry(manifest, vocabs):
    result = CliRunner().invoke(app, ["tokenize", str(manifest), "--vocab", str(vocabs[0])])
    assert result.exit_code == 0, result.output
    assert all(e.ntokens for e in read_manifest(manifest))


def test_bee_tokenize_exit_codes_for_bad_input_and_failed_datasets(manifest, vocabs, tmp_path):
    runner = CliRunner()
    missing_vocab = runner.invoke(app, ["tokenize", str(manifest.parent / "data" / "wiki"), "--vocab", str(tmp_path / "nope")])
    assert missing_vocab.exit_code == 2 and "nope" in missing_vocab.output
    not_a_dataset = runner.invoke(app, ["tokenize", str(tmp_path), "--vocab", str(vocabs[0])])
    assert not_a_dataset.exit_code == 2 and "meta.bin" in not_a_dataset.output
    entries = list(read_manifest(manifest)) + [DatasetEntry(dataset_name="gone", task_name="lm", path="data/gone")]
    write_manifest(manifest, MixtureManifest(entries))
    failed = runner.invoke(app, ["tokenize", str(manifest), "--vocab", str(vocabs[0])])
    assert failed.exit_code == 1 and "lm.gone" in failed.output
