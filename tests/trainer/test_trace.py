"""Provenance to the batch: the origins a batch carries, the trace a run writes, and `bee trace`
leading from a step's row back to the corpus build's input lines."""

import json
import random
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from pretrain_fixtures import write_vocab
from tokenization.tokenizer import CPMBeeTokenizer
from trainer.stream import BatchStream, StreamConfig
from trainer.trace import TraceWriter, resolve_samples, traced_samples


def _lines(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    word = lambda: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8)))  # noqa: E731
    return [" ".join(word() for _ in range(rng.randint(30, 60))) + "." for _ in range(n)]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """A corpus build of two txt files (long lines are split into pieces): (raw folder, manifest)."""
    from corpus.pipeline.build import build_corpus
    from schemas import BuildConfig

    root = tmp_path_factory.mktemp("trace")
    (root / "raw").mkdir()
    (root / "raw" / "a.txt").write_text("\n".join(_lines(1, 12)) + "\n", encoding="utf-8")
    (root / "raw" / "b.txt").write_text("\n".join(_lines(2, 12)) + "\n", encoding="utf-8")
    config = BuildConfig(input=[str(root / "raw")], output=str(root / "out" / "ds"), dataset_name="ds", task_name="lm",
                         split={"min_length": 20, "max_length": 150})
    result = build_corpus(config, [], log=lambda line: None)
    assert result.written > 20
    return root / "raw", result.manifest_path


def _run(tmp_path: Path, manifest: Path) -> Path:
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump({
        "model": {"preset": "tiny"}, "max_steps": 3, "checkpoint": {"dir": str(tmp_path / "ckpt")},
        "data": {"manifest": str(manifest), "vocab": str(write_vocab(tmp_path / "vocab.txt")), "batch_size": 2,
                 "max_length": 512},
    }))
    return run


def test_every_traced_sample_leads_back_to_its_input_line(built, tmp_path):
    raw, manifest = built
    stream = BatchStream(StreamConfig(manifest, batch_size=2, max_length=512, seed=3),
                         CPMBeeTokenizer(write_vocab(tmp_path / "vocab.txt")))
    log_dir = tmp_path / "logs"
    writer = TraceWriter(log_dir, rank=0)
    for step in (1, 2):
        writer.write(step, 0, next(stream)["origins"])
    writer.close()

    samples = traced_samples(log_dir, step=2)
    assert {s.row for s in samples} == {0, 1} and all(s.dataset == "lm.ds" for s in samples)
    resolved = list(resolve_samples(samples, manifest))
    for item in resolved:
        path, line = item.source.split(" piece ")[0].rsplit(":", 1)
        input_line = (raw / path).read_text(encoding="utf-8").splitlines()[int(line) - 1]
        assert item.value["text"] in input_line  # the record is (a piece of) that line
    assert len({item.index for item in resolved}) == len(resolved)  # distinct records


def test_the_newest_line_of_a_step_wins_and_a_missing_step_is_an_error(tmp_path):
    writer = TraceWriter(tmp_path, rank=1)
    writer.write(5, 0, [[[0, 10, [["lm.a", "f", 0, 0]]]]])
    writer.write(5, 0, [[[0, 12, [["lm.a", "f", 0, 99]]]]])  # the step again, after a resume
    writer.close()
    (sample,) = traced_samples(tmp_path, 5)
    assert (sample.rank, sample.offset, sample.tokens) == (1, 99, 12)
    with pytest.raises(KeyError, match="no trace of step 6"):
        traced_samples(tmp_path, 6)


def test_bee_trace_prints_samples_with_source_and_text(built, tmp_path):
    _, manifest = built
    run = _run(tmp_path, manifest)
    stream = BatchStream(StreamConfig(manifest, batch_size=2, max_length=512, seed=3), CPMBeeTokenizer(tmp_path / "vocab.txt"))
    writer = TraceWriter(tmp_path / "ckpt" / "logs", rank=0)  # the run's log_dir
    writer.write(1, 0, next(stream)["origins"])
    writer.close()
    result = CliRunner().invoke(app, ["trace", str(run), "--step", "1", "--row", "1"])
    assert result.exit_code == 0, result.output
    assert "rank 0 micro 0 row 1 tokens 0.." in result.stdout
    assert " <- a.txt:" in result.stdout or " <- b.txt:" in result.stdout
    records = [json.loads(line) for line in CliRunner().invoke(app, ["trace", str(run), "--step", "1", "--json"]).stdout.splitlines()]
    assert {r["row"] for r in records} == {0, 1} and all(r["record"] is not None for r in records)
    missing = CliRunner().invoke(app, ["trace", str(run), "--step", "9"])
    assert missing.exit_code == 2 and "no trace of step 9" in missing.stderr
