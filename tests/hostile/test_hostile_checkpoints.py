"""Crafted checkpoint files: resuming and fine-tuning never run a pickle.

Each path the trainer reads checkpoints through is fed a file whose pickle calls `exec`: the
trainer state of `--resume`, DeepSpeed's own reads of model/optimizer states (the
TorchCheckpointEngine that `engine.load_checkpoint` uses, and `zero_to_fp32` behind
`init_from: <checkpoint folder>`), and an `init_from: <file>.pt`. Each must be refused with
an error naming the file, and the code in it must not have run.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from trainer.checkpoint import (
    CheckpointDir,
    CheckpointError,
    load_trainer_state,
    rng_state,
    save_trainer_state,
    trainer_state_file,
)
from trainer.finetune import load_pretrained_state
from trainer.safe_load import (
    UnsafeCheckpoint,
    deepspeed_reads_restricted,
    load_checkpoint_file,
)


class RunsCode:
    """Unpickled the ordinary way, this writes `marker`: the proof that a load ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "code-ran"


def crafted_torch_file(path: Path, marker: Path, **plain: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**plain, "payload": RunsCode(marker)}, path)
    return path


def test_the_crafted_file_does_run_code_when_loaded_the_ordinary_way(tmp_path: Path, marker: Path) -> None:
    torch.load(crafted_torch_file(tmp_path / "x.pt", marker), weights_only=False)  # what the tests guard against
    assert marker.read_text() == "ran"


# ---- resume: trainer state ---------------------------------------------------------------------


def test_resume_refuses_a_crafted_trainer_state_in_the_old_raw_pickle_format(tmp_path: Path, marker: Path) -> None:
    trainer_state_file(tmp_path, 0).write_bytes(pickle.dumps({"world_size": 1, "x": RunsCode(marker)}, protocol=4))
    with pytest.raises(UnsafeCheckpoint, match=r"trainer_state_rank0.pt: refused to load: .*builtins.exec"):
        load_trainer_state(tmp_path, 0, 1)
    assert not marker.exists()


def test_resume_refuses_a_crafted_trainer_state_in_torch_format(tmp_path: Path, marker: Path) -> None:
    crafted_torch_file(trainer_state_file(tmp_path, 0), marker, world_size=1)
    with pytest.raises(UnsafeCheckpoint, match=r"trainer_state_rank0.pt: refused to load"):
        load_trainer_state(tmp_path, 0, 1)
    assert not marker.exists()


def test_trainer_state_round_trips_rng_and_loader_state(tmp_path: Path) -> None:
    state = {"step": 3, "world_size": 2, "rng": rng_state(), "data": {"ranks": [{"block": [1, 2, 0, 0]}]}}
    save_trainer_state(tmp_path, 0, state)
    loaded = load_trainer_state(tmp_path, 0, 2)
    assert loaded["rng"]["python"] == state["rng"]["python"] and loaded["data"] == state["data"]
    assert (loaded["rng"]["numpy"][1] == state["rng"]["numpy"][1]).all()
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])


def test_trainer_states_of_the_old_raw_pickle_format_still_resume(tmp_path: Path) -> None:
    state = {"step": 3, "world_size": 2, "rank": 0, "rng": rng_state(), "loop": {"step": 3}}
    trainer_state_file(tmp_path, 0).write_bytes(pickle.dumps(state, protocol=4))  # how it was written before
    loaded = load_trainer_state(tmp_path, 0, 2)
    assert loaded["loop"] == {"step": 3} and torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
    assert (loaded["rng"]["numpy"][1] == state["rng"]["numpy"][1]).all()


# ---- resume: DeepSpeed's model / optimizer states -----------------------------------------------


def zero3_optim_state() -> dict:
    """What DeepSpeed 0.19.8 pickles into a ZeRO-3 `*_optim_states.pt` (globals listed from a real one)."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum

    return {"optimizer_state_dict": {"zero_stage": ZeroStageEnum.weights, "loss_scaler": LossScaler(1.0),
                                     "dynamic": DynamicLossScaler(2.0**15, 512, 1.0, 1, False, dtype=torch.float16),
                                     "partition_count": 2,
                                     "fp32_flat_groups": [torch.zeros(4)]},
            "ds_config": {"zero_optimization": {"stage": 3}}, "ds_version": "0.19.8"}  # fmt: skip


def test_deepspeed_checkpoint_engine_reads_real_zero3_states_but_refuses_a_crafted_one(tmp_path: Path, marker: Path) -> None:
    from deepspeed.runtime.checkpoint_engine import TorchCheckpointEngine

    engine = TorchCheckpointEngine()  # what engine.load_checkpoint reads every file with
    good = tmp_path / "step-1" / "zero_pp_rank_0_mp_rank_00_optim_states.pt"
    good.parent.mkdir()
    torch.save(zero3_optim_state(), good)
    with deepspeed_reads_restricted(good.parent):
        state = engine.load(str(good), map_location="cpu")
    assert state["optimizer_state_dict"]["loss_scaler"].cur_scale == 1.0
    bad = crafted_torch_file(tmp_path / "step-1" / "zero_pp_rank_1_mp_rank_00_model_states.pt", marker)
    refused = pytest.raises(UnsafeCheckpoint, match=r"step-1/zero_pp_rank_1_mp_rank_00_model_states.pt: refused to load")
    with refused, deepspeed_reads_restricted(bad.parent):
        engine.load(str(bad), map_location="cpu")
    assert not marker.exists()
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ  # only inside the block


# ---- fine-tuning init_from ------------------------------------------------------------------------


def test_init_from_a_crafted_pt_file_is_refused_naming_it(tmp_path: Path, marker: Path) -> None:
    crafted = crafted_torch_file(tmp_path / "pretrained.pt", marker, state_dict={})
    with pytest.raises(UnsafeCheckpoint, match=r"pretrained.pt: refused to load"):
        load_pretrained_state(str(crafted))
    assert not marker.exists()


def test_init_from_a_plain_state_dict_loads(tmp_path: Path) -> None:
    torch.save({"state_dict": {"w": torch.ones(2)}}, tmp_path / "ok.pt")
    assert torch.equal(load_pretrained_state(str(tmp_path / "ok.pt"))["w"], torch.ones(2))


def test_init_from_a_crafted_zero_checkpoint_folder_is_refused_naming_the_file(tmp_path: Path, marker: Path) -> None:
    root = tmp_path / "ckpt"
    step = root / "step-00000001"
    step.mkdir(parents=True)
    (step / "COMPLETE").write_text("step-00000001")
    (root / "latest").write_text("step-00000001\n")
    torch.save(zero3_optim_state(), step / "zero_pp_rank_0_mp_rank_00_optim_states.pt")
    crafted_torch_file(step / "zero_pp_rank_0_mp_rank_00_model_states.pt", marker, buffer_names=[])
    with pytest.raises(UnsafeCheckpoint, match=r"step-00000001/zero_pp_rank_0_mp_rank_00_model_states.pt: refused to load"):
        load_pretrained_state(str(root))
    assert not marker.exists()


def test_load_checkpoint_file_names_the_global_it_refused(tmp_path: Path, marker: Path) -> None:
    with pytest.raises(UnsafeCheckpoint, match=r"x.pt: refused to load: it names (builtins\.)?exec, which is outside the allow-list.*nothing in it was run"):
        load_checkpoint_file(crafted_torch_file(tmp_path / "x.pt", marker))


@pytest.mark.parametrize("pointer", ["../elsewhere/step-00000001", "/tmp/step-00000001", "step-1\xff"])
def test_a_latest_pointer_that_is_not_a_tag_is_refused(tmp_path: Path, pointer: str) -> None:
    elsewhere = tmp_path / "elsewhere" / "step-00000001"
    elsewhere.mkdir(parents=True)
    (elsewhere / "COMPLETE").write_text("x")
    root = tmp_path / "ckpt"
    root.mkdir()
    (root / "latest").write_bytes(pointer.encode("utf-8", errors="surrogateescape") + b"\n")
    with pytest.raises(CheckpointError, match=r"ckpt/latest holds .* not a checkpoint tag"):
        CheckpointDir(root).latest()
