"""trainer.pretrain under the real `deepspeed` launcher: 2 CPU processes, gloo, ZeRO-3, tiny model.

Four launches, three of them at once (each costs ~15 s of start-up):
- uninterrupted: 6 steps, checkpoints at 3 and 6, evaluation at 3 and 6;
- killed: the same run, SIGKILLed by a fault hook in the middle of saving step 6;
- non-finite: 2 micro-batches per step, every loss from step 2 on NaN, max_nonfinite_steps=2;
then, at once, `--resume` of the killed run, which must continue from step 3 (the last complete
checkpoint) and reproduce the uninterrupted run's steps 4-6 exactly, and a continued
pretraining run: `init_from` the uninterrupted run's checkpoint, `start_step` 3, with
`inspect_iters`.
"""

from __future__ import annotations

import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from pretrain_fixtures import Launch, launch, write_run
from trainer.checkpoint import CheckpointDir
from trainer.finetune import load_pretrained_state
from trainer.metrics import read_metrics
from trainer.pretrain import LoopState
from trainer.trace import resolve_samples, traced_samples


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Launch]]:
    roots = {name: tmp_path_factory.mktemp(name) for name in ("whole", "killed", "nonfinite")}
    configs = {
        "whole": write_run(roots["whole"]),
        "killed": write_run(roots["killed"]),
        "nonfinite": write_run(
            roots["nonfinite"], max_nonfinite_steps=2, eval__interval=100, optimizer__grad_accumulation=2
        ),
    }
    env = {"whole": {}, "killed": {"BEE_FAULT_KILL_AT": "save:6"}, "nonfinite": {"BEE_FAULT_NAN_FROM_STEP": "2"}}
    with ThreadPoolExecutor(3) as pool:
        futures = {
            name: pool.submit(launch, configs[name], **env[name]) for name in configs
        }
        results = {name: (configs[name], future.result()) for name, future in futures.items()}
    # continued pretraining from the finished run's checkpoint, CPM-Bee's --start-step 3
    root = tmp_path_factory.mktemp("continued")
    configs["continued"] = write_run(
        root, init_from=str(roots["whole"] / "ckpt"), start_step=3, max_steps=5, inspect_iters=2,
        schedule__decay_steps=6, eval__interval=100, checkpoint__interval=100,
    )  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        resumed = pool.submit(launch, configs["killed"], resume=True)
        continued = pool.submit(launch, configs["continued"])
        results["resumed"] = (configs["killed"], resumed.result())
        results["continued"] = (configs["continued"], continued.result())
    return results


def metrics(config: Path, kind: str = "train") -> list[dict]:
    return read_metrics(config.parent / "ckpt" / "logs" / "tiny.metrics.jsonl", kind)


def ok(result: Launch) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.integration
def test_uninterrupted_run_trains_evaluates_and_checkpoints(runs) -> None:
    config, result = runs["whole"]
    ok(result)
    steps = metrics(config)
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert all(r["applied"] and math.isfinite(r["loss"]) for r in steps)
    assert steps[-1]["loss"] < steps[0]["loss"]  # it learns
    assert set(steps[0]["task_loss"]) == {"chat_task", "qa_task"}  # CPM-Bee's per-task loss
    assert steps[0]["lr"] == pytest.approx(5e-3) and steps[1]["lr"] == pytest.approx(1e-2)  # cosine warmup over 2
    assert all(r["tokens"] > 0 and r["grad_norm"] > 0 for r in steps)
    assert [r["step"] for r in metrics(config, "eval")] == [3, 6]
    store = CheckpointDir(config.parent / "ckpt")
    assert store.latest() == "step-00000006" and store.complete_tags() == ["step-00000003", "step-00000006"]
    assert "| step 6/6 | loss" in result.stdout  # the progress line
    (data,) = metrics(config, "data")  # chat's records come from its token shards, qa's are tokenized online
    assert data["samples_read"]["shards"] > 0 and data["samples_read"]["online"] > 0
    assert "samples from token shards" in result.stdout
    assert result.shm_left == []  # DeepSpeed's CPU all-reduce segments do not outlive the run
    traced = traced_samples(config.parent / "ckpt" / "logs", 6)  # what step 6 trained on, every rank
    assert {s.rank for s in traced} == {0, 1}
    manifest = config.parent / "train.json"
    for sample in resolve_samples(traced, manifest):
        assert "<ans>" in sample.value and sample.index is not None  # the record read back from its dataset


@pytest.mark.integration
def test_sigkill_mid_save_leaves_the_previous_checkpoint_latest(runs) -> None:
    config, result = runs["killed"]
    assert result.returncode != 0
    assert result.shm_left == []  # unlinked right after start-up, so not left by a killed rank either
    whole = metrics(runs["whole"][0])
    killed = [r for r in metrics(config) if r["step"] <= 6]
    assert [r["loss"] for r in killed[:6]] == [r["loss"] for r in whole]  # same seed, same losses


@pytest.mark.integration
def test_resume_after_the_kill_continues_from_step_3_with_the_uninterrupted_losses(runs) -> None:
    config, result = runs["resumed"]
    ok(result)
    assert "resumed from" in result.stdout and "step-00000003 at step 3" in result.stdout
    whole = metrics(runs["whole"][0])
    resumed = metrics(config)[6:]  # after the killed run's six records
    assert [r["step"] for r in resumed] == [4, 5, 6]
    # exactly equal: model, optimizer, LR schedule, data position and RNG all continue
    assert [r["loss"] for r in resumed] == [r["loss"] for r in whole[3:]]
    assert [r["task_loss"] for r in resumed] == [r["task_loss"] for r in whole[3:]]
    assert [r["lr"] for r in resumed] == [r["lr"] for r in whole[3:]]
    assert metrics(config, "eval")[-1]["loss"] == metrics(runs["whole"][0], "eval")[-1]["loss"]
    store = CheckpointDir(config.parent / "ckpt")
    assert store.latest() == "step-00000006"
    assert not any(p.name.startswith(".tmp-") for p in store.root.iterdir())  # the killed save was cleaned
    # the trace of the steps trained again after the resume is the uninterrupted run's
    for step in (4, 6):
        assert traced_samples(config.parent / "ckpt" / "logs", step) == traced_samples(runs["whole"][0].parent / "ckpt" / "logs", step)


@pytest.mark.integration
def test_non_finite_losses_skip_the_step_and_abort_after_k_in_a_row(runs) -> None:
    config, result = runs["nonfinite"]
    assert result.returncode != 0
    assert "the loss was not finite" in result.stderr and "2 steps in a row" in result.stderr
    steps = metrics(config)
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert steps[0]["applied"] and not steps[1]["applied"] and not steps[2]["applied"]
    assert math.isnan(steps[1]["loss"]) and steps[1]["grad_norm"] == math.inf
    assert steps[2]["lr"] == steps[1]["lr"]  # a skipped step does not advance the schedule
    # gradient accumulation: step 1 trained on this batch and the next one of each rank
    first_whole = metrics(runs["whole"][0])[0]
    assert steps[0]["tokens"] > first_whole["tokens"] and steps[0]["loss"] != first_whole["loss"]


def test_early_stop_counts_evaluations_without_improvement() -> None:
    state = LoopState()
    for loss in (3.0, 2.0, 2.0, 1.95, 1.96):
        state.record_eval(loss, min_delta=0.1, patience=3)
    assert state.best_eval == 2.0 and state.evals_without_improvement == 3 and state.stopped_early
    state = LoopState()
    for loss in (3.0, 3.5, 2.0, 2.5):
        state.record_eval(loss, min_delta=0.0, patience=2)
    assert not state.stopped_early and state.evals_without_improvement == 1


def first_batch_loss(config: Path, model) -> float:
    """The loss a run logs for its first step (the mean over both ranks of each rank's first
    micro-batch), computed in this process with `model` on the batches the run's loaders make."""
    from schemas import load_run_config
    from tokenization import CPMBeeTokenizer
    from trainer.data import MixtureLoader
    from trainer.engine import model_inputs
    from trainer.metrics import mean_loss, token_losses

    run = load_run_config(config)
    tokenizer = CPMBeeTokenizer(run.data.vocab)
    losses = []
    for rank in range(2):
        loader = MixtureLoader.from_config(run.data.model_copy(update={"background": False}), run.data.manifest,
                                           tokenizer, rank, 2, run.seed)  # fmt: skip
        batch = next(loader)
        loader.close()
        with torch.no_grad():
            logits, _ = model(**model_inputs(batch, torch.device("cpu")))
            losses.append(float(mean_loss(*token_losses(logits, torch.from_numpy(batch["target"])))))
    return sum(losses) / 2


@pytest.mark.integration
def test_load_model_consolidates_the_zero3_checkpoint_and_export_reads_back(runs, tmp_path) -> None:
    from trainer.export import export_checkpoint
    from trainer.weight_names import to_cpm_live_state_dict
    from trainer.model_io import load_model

    config, result = runs["whole"]
    ok(result)
    model, model_config = load_model(str(config.parent / "ckpt"))  # root: `latest`; model_config.json beside
    assert model_config.num_layers == 2 and model_config.vocab_size == 4096
    same, _ = load_model(str(config.parent / "ckpt" / "step-00000006"), "tiny")
    want = to_cpm_live_state_dict(model)
    assert all(torch.equal(want[k], v) for k, v in to_cpm_live_state_dict(same).items())
    for fmt, output in (("cpm-live", tmp_path / "bee.pt"), ("hf", tmp_path / "hf")):
        export_checkpoint(str(config.parent / "ckpt"), output, fmt)
        got = to_cpm_live_state_dict(load_model(str(output))[0])
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


@pytest.mark.integration
def test_continued_pretraining_starts_from_the_checkpoint_weights_at_start_step(runs) -> None:
    from trainer.model_io import load_model
    from trainer.param_stats import parameter_stats

    config, result = runs["continued"]
    ok(result)
    steps = metrics(config)
    whole = metrics(runs["whole"][0])
    assert [r["step"] for r in steps] == [4, 5]
    assert [r["lr"] for r in steps] == [r["lr"] for r in whole[3:5]]  # the schedule goes on from step 3
    assert CheckpointDir(config.parent / "ckpt").latest() == "step-00000005"
    # its first step trains the uninterrupted run's final weights on the data's first batches
    pretrained, _ = load_model(str(runs["whole"][0].parent / "ckpt"))
    assert steps[0]["loss"] == pytest.approx(first_batch_loss(config, pretrained), rel=1e-4)
    assert steps[0]["loss"] < whole[0]["loss"]  # the same batches, trained weights
    # inspect_iters=2: step 4's weight statistics, reduced from the two ranks' partitions
    (inspected,) = metrics(config, "inspect")
    assert inspected["step"] == 4 and inspected["seconds"] > 0
    expected = parameter_stats(pretrained.named_parameters(), torch.device("cpu"))
    assert inspected["groups"].keys() == expected.keys()
    for group, values in expected.items():
        got = inspected["groups"][group]
        assert got["grad_std"] > 0
        for stat in ("weight_mean", "weight_std", "weight_max"):
            assert got[stat] == pytest.approx(values[stat], rel=1e-5, abs=1e-7), (group, stat)

class RunsCode:
    """Unpickled the ordinary way, this writes `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


@pytest.mark.integration
def test_resume_refuses_a_crafted_deepspeed_file_without_running_it(runs, tmp_path: Path) -> None:
    whole, _ = runs["whole"]
    root = tmp_path / "copy"
    shutil.copytree(whole.parent, root, ignore=shutil.ignore_patterns("launch-*"))
    config = root / "run.yaml"
    config.write_text(config.read_text().replace(str(whole.parent), str(root)))
    crafted = root / "ckpt" / "step-00000006" / "zero_pp_rank_1_mp_rank_00_optim_states.pt"
    marker = tmp_path / "code-ran"
    torch.save({"optimizer_state_dict": RunsCode(marker)}, crafted)
    result = launch(config, resume=True)
    assert result.returncode != 0 and not marker.exists()
    assert f"error: {crafted}: refused to load: it names" in result.stderr, result.stderr[-3000:]


@pytest.mark.integration
def test_a_real_zero3_checkpoint_consolidates_under_the_allow_list(runs) -> None:
    whole, result = runs["whole"]
    ok(result)
    state = load_pretrained_state(str(whole.parent / "ckpt"))  # fine-tuning's init_from a checkpoint folder
    assert len(state) > 0 and all(torch.isfinite(v).all() for v in state.values())
