"""Task evaluation in a training run: counts summed over ranks, calls padded to lockstep, early stop on accuracy.

The cross-rank parts run on a real 2-process gloo group (no DeepSpeed); the whole path
under 2-process ZeRO-3 is tests/trainer/test_finetune.py's task-evaluation launch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from schemas.run_config import EvalSection
from trainer.evaluation import EvalReport, TaskScore
from trainer.metrics import EvalRecord, gather_totals, sum_over_ranks
from trainer.pretrain import LoopState
from trainer.task_eval import Lockstep


def test_totals_are_summed_per_task_over_the_ranks_that_have_it() -> None:
    per_rank = [{"ccpm": [3.0, 1.0], "qa": [2.0, 0.5]}, {"ccpm": [4.0, 2.0]}, {}]
    assert sum_over_ranks(per_rank) == {"ccpm": [7.0, 3.0], "qa": [2.0, 0.5]}
    assert list(sum_over_ranks([{"b": [1.0]}, {"a": [1.0]}])) == ["a", "b"]  # sorted by task
    with pytest.raises(ValueError, match="task 'qa': ranks sent 2 and 1 totals"):
        sum_over_ranks([{"qa": [1.0, 2.0]}, {"qa": [1.0]}])
    assert gather_totals({"qa": [1.0]}) == {"qa": [1.0]}  # no process group: this rank's


def test_task_scores_survive_the_round_trip_through_totals() -> None:
    score = TaskScore(samples=5, option_samples=3, perplexity_correct=2, generation_correct=1, generation_samples=3,
                      free_samples=2, exact_match=1, f1_sum=1.25)  # fmt: skip
    assert TaskScore.from_totals(score.as_totals()) == score
    summed = TaskScore.from_totals(sum_over_ranks([{"t": score.as_totals()}, {"t": score.as_totals()}])["t"])
    assert summed == score + score and summed.as_dict()["accuracy_perplexity"] == pytest.approx(2 / 3)
    report = EvalReport(tasks={"a": score, "b": TaskScore(samples=1, option_samples=1, perplexity_correct=1)})
    assert report.total().as_dict()["accuracy_perplexity"] == pytest.approx(3 / 4)  # pooled over samples
    # without generation there is no generation accuracy (not 0%)
    assert TaskScore(samples=2, option_samples=2, perplexity_correct=1).as_dict()["accuracy_generation"] is None


def _lockstep_worker(rank: int, rendezvous: str, results_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        lockstep, calls = Lockstep(), [0]

        def collective() -> None:  # as a ZeRO-3 forward's parameter gathers are
            calls[0] += 1
            dist.all_reduce(torch.ones(1))

        def real_call() -> None:
            lockstep.before_call()
            collective()

        def dummy_call() -> None:  # goes through the model, as LockstepModel.dummy_forward does
            real_call()

        for _ in range([3, 1][rank]):  # rank 0 has three calls of work, rank 1 one
            real_call()
        padded = lockstep.finish(dummy_call)
        second = lockstep.finish(dummy_call)  # nobody has work: no padding
        totals = gather_totals({"ccpm": [1.0, float(rank)], **({"qa": [2.0, 1.0]} if rank == 1 else {})})
        result = {"calls": calls[0], "padded": padded, "second": second, "totals": totals}
        (Path(results_dir) / f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_ranks_with_fewer_calls_are_padded_to_the_most_and_totals_are_summed(tmp_path) -> None:
    # results come back as files: a multiprocessing.Manager forks this (threaded) process, which can crash
    mp.spawn(_lockstep_worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert results[0]["calls"] == results[1]["calls"] == 3  # the same number of collectives: nobody hangs
    assert (results[0]["padded"], results[1]["padded"]) == (0, 2)
    assert results[0]["second"] == results[1]["second"] == 0
    assert results[0]["totals"] == results[1]["totals"] == {"ccpm": [2.0, 1.0], "qa": [2.0, 1.0]}


def test_early_stop_on_accuracy_waits_for_a_higher_value() -> None:
    state = LoopState()
    for accuracy in (0.25, 0.5, 0.55, 0.4):
        state.record_eval(accuracy, min_delta=0.1, patience=2, higher_is_better=True)
    assert state.best_eval == 0.5 and state.evals_without_improvement == 2 and state.stopped_early
    state = LoopState()
    state.record_eval(float("nan"), min_delta=0.0, patience=None, higher_is_better=True)  # nothing scored yet
    state.record_eval(0.3, min_delta=0.0, patience=None, higher_is_better=True)
    assert state.best_eval == 0.3 and state.evals_without_improvement == 0
    old = LoopState(best_eval=math.inf)  # a checkpoint of an earlier version, before its first eval
    old.record_eval(2.0, min_delta=0.0, patience=None)
    assert old.best_eval == 2.0


def test_watching_a_score_needs_the_evaluation_that_makes_it() -> None:
    assert EvalSection(watch="accuracy").higher_is_better and not EvalSection().higher_is_better
    with pytest.raises(ValueError, match="eval.watch accuracy needs task evaluation: set eval.samples above 0"):
        EvalSection(watch="accuracy", samples=0)
    with pytest.raises(ValueError, match="eval.watch generation_accuracy is scored by generation"):
        EvalSection(watch="generation_accuracy")


def test_eval_record_names_each_tasks_scores_for_tensorboard_and_the_progress_line() -> None:
    tasks = {"ccpm": TaskScore(samples=4, option_samples=4, perplexity_correct=1, generation_correct=2,
                               generation_samples=4).as_dict()}
    record = EvalRecord(step=6, loss=2.5, task_loss={"ccpm": 2.5}, tasks=tasks, overall={"accuracy": 0.25},
                        watch="accuracy", value=0.25, best=0.5, evals_without_improvement=1, task_seconds=1.5)  # fmt: skip
    assert record.scalars() == {"Loss/eval": 2.5, "Loss/eval/ccpm": 2.5, "Accuracy/eval/ccpm/perplexity": 0.25,
                                "Accuracy/eval/ccpm/generation": 0.5, "Eval/accuracy": 0.25}  # fmt: skip
    line = record.progress_line()
    assert "| eval at step 6 | loss 2.5000 | accuracy 0.2500 | best accuracy 0.5000" in line
    assert "| ccpm: 4 samples | acc (option ppl) 25.00% | acc (generation) 50.00%" in line
    assert record.to_json()["kind"] == "eval" and record.to_json()["tasks"]["ccpm"]["option_samples"] == 4
