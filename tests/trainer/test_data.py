"""Specification of the data path (`trainer.stream.BatchStream`) and its background loader (`trainer.data`)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from mixture_files import make_dataset, write_manifest
from tokenization import CPMBeeTokenizer, tokenize_dataset
from trainer.data import MixtureLoader
from trainer.stream import BatchStream, StreamConfig

TINY_VOCAB = Path(__file__).parent / "assets" / "tiny_vocab.txt"


@pytest.fixture(scope="module")
def tokenizer() -> CPMBeeTokenizer:
    return CPMBeeTokenizer(TINY_VOCAB)


@pytest.fixture
def manifest(tmp_path) -> Path:
    """Two small datasets (a few blocks each, so epochs wrap during the tests)."""
    make_dataset(tmp_path, "lm", [{"text": f"lm {i} " + "bee " * (i % 6), "<ans>": "data"} for i in range(60)])
    make_dataset(tmp_path, "qa", [{"q": f"question {i}", "a": "x" * (i % 9)} for i in range(40)])
    path = tmp_path / "datasets.json"
    write_manifest(
        path,
        [
            {"dataset_name": "lm", "task_name": "lm", "path": "lm", "incontext_weight": [0.5, 0.3, 0.2]},
            {"dataset_name": "qa", "task_name": "qa", "path": "qa", "weight": 2, "transforms": [{"input": "$q", "<ans>": "$a"}]},
        ],
    )
    return path


def stream(manifest, tokenizer, **kwargs) -> BatchStream:
    kwargs.setdefault("seed", 0)
    return BatchStream(StreamConfig(manifest, batch_size=3, max_length=48, **kwargs), tokenizer)


def assert_same_batches(expected: list[dict], actual: list[dict]) -> None:
    assert len(expected) == len(actual)
    for n, (want, have) in enumerate(zip(expected, actual)):
        assert want.keys() == have.keys()
        for key in want:
            if key == "origins":  # nested lists, not an array
                assert want[key] == have[key], f"batch {n}: {key}"
            else:
                assert np.array_equal(want[key], have[key]), f"batch {n}: {key}"


def test_the_same_seed_gives_the_same_batches_and_another_seed_others(manifest, tokenizer):
    runs = [[next(stream(manifest, tokenizer, seed=seed))] for seed in (5, 5, 6)]
    assert_same_batches(runs[0], runs[1])
    assert not np.array_equal(runs[0][0]["inputs"], runs[2][0]["inputs"])


def test_batches_hold_transformed_samples_of_every_task(manifest, tokenizer):
    data = stream(manifest, tokenizer)
    batches = [next(data) for _ in range(6)]
    assert {name for b in batches for name in b["task_names"]} == {"lm", "qa"}
    assert all(b["inputs"].shape == (3, 48) for b in batches)
    assert data.rejects == {}


def test_incontext_samples_are_drawn_by_incontext_weight(manifest, tokenizer):
    write_manifest(manifest, [{"dataset_name": "qa", "task_name": "qa", "path": "qa", "incontext_weight": [0, 0, 1], "transforms": [{"input": "$q", "<ans>": "$a"}]}])
    data = BatchStream(StreamConfig(manifest, batch_size=3, max_length=128, seed=0), tokenizer)
    # every instance is its sample followed by two in-context samples (short records: they fit)
    for batch in (next(data) for _ in range(3)):
        for spans, sample_ids, length in zip(batch["spans"], batch["sample_ids"], batch["length"]):
            for span in range(spans[length - 1] + 1):
                assert np.unique(sample_ids[:length][spans[:length] == span]).tolist() == [0, 1, 2]


def test_unusable_samples_are_counted_by_dataset_and_reason(manifest, tokenizer, tmp_path):
    make_dataset(tmp_path, "mixed", [{"text": "x" * (60 if i % 3 == 0 else 5)} for i in range(30)] + [{"other": "y"}])
    write_manifest(manifest, [{"dataset_name": "mixed", "task_name": "t", "path": "mixed", "transforms": [{"input": "$text"}]}])
    data = stream(manifest, tokenizer)
    for _ in range(5):
        next(data)
    assert set(data.rejects) == {"t.mixed:too_long", "t.mixed:transform_error"}
    assert "field 'text' not in record" in "".join(data.recent_rejects)


def test_a_dataset_with_no_usable_sample_stops_with_a_clear_error(manifest, tokenizer, tmp_path):
    make_dataset(tmp_path, "long", [{"text": "x" * 100}])
    write_manifest(manifest, [{"dataset_name": "long", "task_name": "t", "path": "long"}])
    with pytest.raises(RuntimeError, match=r"t.long: 1000 samples in a row could not be used \(max_length=48\)"):
        next(stream(manifest, tokenizer))


@pytest.fixture
def tokenized_manifest(manifest) -> Path:
    """The `manifest` fixture plus a dataset without a transform, tokenized into shards: plain text,
    structured samples with options and spans the vocab lacks, answers with fields, a reject."""
    folder = manifest.parent
    text = [{"text": f"bee {i} 蜜蜂 " + "data " * (i % 4)} for i in range(30)]
    options = [{"question": f"q{i} 哪个", "options": {f"<option_{k}>": f"o{k} 词{k}" for k in range(3)}, "<ans>": f"<option_{i % 3}>"} for i in range(20)]
    answers = [{"input": "x", "<ans>": {"a": f"a{i}", "b": "b 蜂"}} for i in range(10)]
    make_dataset(folder, "mixed", [r for group in zip(text, options + answers) for r in group] + [{"<ans>": 7}], block_size=512)
    tokenize_dataset(folder / "mixed", TINY_VOCAB)
    entries = json.loads(manifest.read_text())
    entries.append({"dataset_name": "mixed", "task_name": "lm", "path": "mixed", "weight": 3, "incontext_weight": [0.2, 0.4, 0.4]})
    write_manifest(manifest, entries)
    return manifest


@pytest.mark.parametrize("shuffle_answers", [False, True])
def test_token_shards_give_the_same_batches_as_tokenizing_online(tokenized_manifest, tokenizer, shuffle_answers):
    kwargs = dict(seed=4, shuffle_answers=shuffle_answers)
    online = stream(tokenized_manifest, tokenizer, token_shards=False, **kwargs)
    shards = stream(tokenized_manifest, tokenizer, **kwargs)
    assert_same_batches([next(online) for _ in range(25)], [next(shards) for _ in range(25)])
    assert online.samples_read["shards"] == 0 and shards.samples_read["shards"] > 50
    # rows whose answer fields are shuffled, and datasets with a transform, are converted online
    assert shards.samples_read["online"] > 0
    assert shards.rejects == online.rejects


def test_stale_token_shards_are_not_used(tokenized_manifest, tokenizer):
    data = stream(tokenized_manifest, tokenizer, max_depth=8)  # the shards were made with max_depth 16
    for _ in range(5):
        next(data)
    assert data.samples_read["shards"] == 0


def test_a_resumed_stream_continues_with_exactly_the_next_batches(manifest, tokenizer):
    uninterrupted = stream(manifest, tokenizer, seed=11)
    expected = [next(uninterrupted) for _ in range(12)]  # several epochs of both datasets

    first = stream(manifest, tokenizer, seed=11)
    head = [next(first) for _ in range(5)]
    state = pickle.loads(pickle.dumps(first.state_dict()))
    resumed = stream(manifest, tokenizer, seed=11)
    assert resumed.load_state_dict(state) == []
    assert_same_batches(expected, head + [next(resumed) for _ in range(7)])


def test_a_state_of_another_rank_is_refused(manifest, tokenizer):
    state = stream(manifest, tokenizer, rank=0, world_size=2).state_dict()
    with pytest.raises(ValueError, match="rank 0 of 2, this is rank 1 of 2"):
        stream(manifest, tokenizer, rank=1, world_size=2).load_state_dict(state)


def test_a_manifest_change_takes_effect_between_instances(manifest, tokenizer):
    data = stream(manifest, tokenizer)
    next(data)
    entries = json.loads(manifest.read_text())
    entries[1]["weight"] = 0  # stop drawing qa
    write_manifest(manifest, entries)
    next(data)  # flushes rows opened before the change
    later = [next(data) for _ in range(4)]
    assert all(b["task_names"] == ["lm"] for b in later)


# --------------------------------------------------------------------------- the loader


def test_the_background_loader_gives_the_stream_batches_and_resumes_exactly(manifest, tokenizer):
    in_process = MixtureLoader(StreamConfig(manifest, 3, 48, seed=4), tokenizer, background=False)
    expected = [next(in_process) for _ in range(8)]

    with MixtureLoader(StreamConfig(manifest, 3, 48, seed=4), tokenizer, prefetch=2) as loader:
        head = [next(loader) for _ in range(3)]
        state = loader.state_dict()  # batches already made ahead in the queue are not in it
        assert state["batches"] == 3
    with MixtureLoader(StreamConfig(manifest, 3, 48, seed=4), tokenizer) as resumed:
        resumed.load_state_dict(state)
        tail = [next(resumed) for _ in range(5)]
        assert resumed.wait_seconds > 0
    assert_same_batches(expected, head + tail)


def test_the_in_process_loader_resumes_exactly(manifest, tokenizer):
    loader = MixtureLoader(StreamConfig(manifest, 3, 48, seed=2), tokenizer, background=False)
    for _ in range(4):
        next(loader)
    state = loader.state_dict()
    resumed = MixtureLoader(StreamConfig(manifest, 3, 48, seed=2), tokenizer, background=False)
    resumed.load_state_dict(state)
    assert_same_batches([next(loader) for _ in range(3)], [next(resumed) for _ in range(3)])


def test_an_error_in_the_background_process_reaches_the_trainer(manifest, tokenizer, tmp_path):
    make_dataset(tmp_path, "long", [{"text": "x" * 100}])
    write_manifest(manifest, [{"dataset_name": "long", "task_name": "t", "path": "long"}])
    with MixtureLoader(StreamConfig(manifest, 3, 48), tokenizer) as loader:
        with pytest.raises(RuntimeError, match=r"data process failed:(.|\n)*t.long: 1000 samples in a row"):
            next(loader)


def test_a_loader_state_of_another_version_is_refused(manifest, tokenizer):
    with pytest.raises(ValueError, match="version"):
        MixtureLoader(StreamConfig(manifest, 3, 48), tokenizer).load_state_dict({"version": 99})


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.startswith("State:") and "Z" in line for line in status)  # exited, not reaped
    except FileNotFoundError:
        return True


def test_the_background_process_ends_when_the_trainer_is_killed(manifest):
    import os
    import signal
    import subprocess
    import sys
    import time

    trainer = (
        "import os, signal, sys\n"
        "from tokenization import CPMBeeTokenizer\n"
        "from trainer.data import MixtureLoader\n"
        "from trainer.stream import StreamConfig\n"
        "if __name__ == '__main__':\n"
        f"    loader = MixtureLoader(StreamConfig({str(manifest)!r}, 3, 48), CPMBeeTokenizer({str(TINY_VOCAB)!r}), prefetch=2)\n"
        "    next(loader)\n"
        "    print(loader._process.pid, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)  # no close(), no stop flag: as a rank killed by the launcher\n"
    )
    script = manifest.parent / "trainer_rank.py"
    script.write_text(trainer)
    output = manifest.parent / "trainer_rank.out"
    with output.open("w") as out:  # a file, not a pipe: an orphaned worker would hold a pipe open
        killed = subprocess.run([sys.executable, str(script)], stdout=out, stderr=subprocess.STDOUT, timeout=120)
    assert killed.returncode == -signal.SIGKILL, output.read_text()
    worker = int(output.read_text().split()[0])
    deadline = time.monotonic() + 20
    while not _gone(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not _gone(worker):
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the data process outlived its trainer")
