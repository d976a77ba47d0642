"""Checkpoint folders: only complete saves are ever named by `latest`; killed saves are ignored and cleaned.

The end-to-end behaviour (DeepSpeed files, resume equality, SIGKILL mid-save) is covered by
tests/trainer/test_pretrain.py; these are the folder rules on their own.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.checkpoint import (
    COMPLETE_FILE,
    CheckpointDir,
    CheckpointError,
    load_trainer_state,
    rng_state,
    save_trainer_state,
    set_rng_state,
    step_tag,
    tag_step,
)


def fake_save(store: CheckpointDir, step: int, ranks: int = 2) -> str:
    """What a save does to the folder, without DeepSpeed: files into the temp folder, then publish."""
    tag = step_tag(step)
    tmp = store.prepare(tag)
    tmp.mkdir()
    (tmp / "mp_rank_00_model_states.pt").write_bytes(b"weights")
    for rank in range(ranks):
        save_trainer_state(tmp, rank, {"step": step, "world_size": ranks, "rank": rank})
    store.publish(tag)
    return tag


def test_tags_sort_by_step_and_round_trip() -> None:
    assert step_tag(3) == "step-00000003" and tag_step("step-00000003") == 3
    assert sorted([step_tag(100), step_tag(20), step_tag(3)]) == [step_tag(3), step_tag(20), step_tag(100)]
    with pytest.raises(ValueError, match="not a checkpoint tag"):
        tag_step("latest")


def test_no_checkpoint_yet_means_latest_is_none(tmp_path: Path) -> None:
    assert CheckpointDir(tmp_path / "ckpt").latest() is None


def test_publish_renames_marks_complete_and_moves_latest(tmp_path: Path) -> None:
    store = CheckpointDir(tmp_path)
    fake_save(store, 3)
    assert store.latest() == "step-00000003"
    assert (tmp_path / "step-00000003" / COMPLETE_FILE).is_file()
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
    fake_save(store, 6)
    assert store.latest() == "step-00000006"
    assert (tmp_path / "latest").read_text().strip() == "step-00000006"


def test_an_unfinished_save_is_never_latest_and_is_cleaned_by_the_next_save(tmp_path: Path) -> None:
    store = CheckpointDir(tmp_path)
    fake_save(store, 3)
    killed = store.prepare(step_tag(6))  # a save that died after writing some files
    killed.mkdir()
    (killed / "mp_rank_00_model_states.pt").write_bytes(b"half")
    assert store.latest() == "step-00000003"
    assert store.complete_tags() == ["step-00000003"]
    # the resumed run saves step 6 again: the leftover temp folder is replaced
    fake_save(store, 6)
    assert store.latest() == "step-00000006"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-00000003", "step-00000006"]


def test_a_temp_folder_older_than_latest_is_pruned(tmp_path: Path) -> None:
    store = CheckpointDir(tmp_path)
    (tmp_path / ".tmp-step-00000002").mkdir(parents=True)
    fake_save(store, 3)
    assert not (tmp_path / ".tmp-step-00000002").exists()


def test_keep_last_deletes_the_oldest_complete_checkpoints(tmp_path: Path) -> None:
    store = CheckpointDir(tmp_path, keep_last=2)
    for step in (1, 2, 3, 4):
        fake_save(store, step)
    assert store.complete_tags() == ["step-00000003", "step-00000004"]


def test_latest_naming_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    store = CheckpointDir(tmp_path)
    fake_save(store, 3)
    (tmp_path / "latest").write_text("step-00000009\n")
    with pytest.raises(CheckpointError, match=r"names 'step-00000009'.*complete checkpoints here: \['step-00000003'\]"):
        store.latest()


def test_sigkill_mid_publish_leaves_the_previous_checkpoint_latest(tmp_path: Path) -> None:
    """A process killed between writing files and publishing: `latest` is untouched."""
    store = CheckpointDir(tmp_path)
    fake_save(store, 3)
    script = textwrap.dedent(
        f"""
        from corpus.faults import fault_point
        from trainer.checkpoint import CheckpointDir, save_trainer_state, step_tag
        store = CheckpointDir({str(tmp_path)!r})
        tmp = store.prepare(step_tag(6)); tmp.mkdir()
        save_trainer_state(tmp, 0, {{"step": 6, "world_size": 1}})
        fault_point("save", 6)
        store.publish(step_tag(6))
        """
    )
    env = dict(os.environ, BEE_FAULT_KILL_AT="save:6")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert result.returncode == -9, result.stderr.decode()
    assert store.latest() == "step-00000003"
    assert (tmp_path / ".tmp-step-00000006").is_dir()


def test_trainer_state_is_per_rank_and_refuses_another_world_size(tmp_path: Path) -> None:
    save_trainer_state(tmp_path, 0, {"step": 3, "world_size": 2})
    assert load_trainer_state(tmp_path, 0, 2)["step"] == 3
    with pytest.raises(CheckpointError, match="saved by a run of 2 ranks, this run has 4"):
        load_trainer_state(tmp_path, 0, 4)
    with pytest.raises(CheckpointError, match="trainer_state_rank3.pt is missing"):
        load_trainer_state(tmp_path, 3, 4)


def test_rng_state_round_trip_replays_every_generator() -> None:
    state = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first
