"""CPM-Bee's loss and per-task loss, and the metrics log."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from trainer.metrics import MetricsLog, StepRecord, TaskLossSums, average_over_ranks, mean_loss, read_metrics, token_losses


def test_loss_is_cross_entropy_over_vocab_and_ext_columns_ignoring_minus_100() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 12)  # vocab 10 + 2 ext-table columns
    target = torch.tensor([[1, 11, -100, 3, -100], [10, -100, -100, 0, 2]])
    losses, predicted = token_losses(logits, target)
    expected = F.cross_entropy(logits.view(-1, 12), target.view(-1), ignore_index=-100)
    torch.testing.assert_close(mean_loss(losses, predicted), expected)
    assert predicted.sum() == 6


def test_a_batch_without_predicted_tokens_has_zero_loss_and_zero_gradient() -> None:
    logits = torch.randn(1, 3, 4, requires_grad=True)
    loss = mean_loss(*token_losses(logits, torch.full((1, 3), -100)))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(logits.grad) == 0


def test_per_task_loss_is_each_tasks_token_mean() -> None:
    torch.manual_seed(1)
    logits = torch.randn(1, 6, 8)
    target = torch.tensor([[1, 2, 3, -100, 4, 5]])
    task_ids = torch.tensor([[0, 0, 1, 1, 1, 0]])
    losses, predicted = token_losses(logits, target)
    sums = TaskLossSums()
    sums.add(losses, predicted, task_ids, ["qa", "chat"])
    means = sums.means()
    for task, positions in (("qa", [0, 1, 5]), ("chat", [2, 4])):
        expected = F.cross_entropy(logits[0, positions], target[0, positions])
        assert means[task] == pytest.approx(expected.item(), rel=1e-6)


def test_ranks_are_averaged_as_cpm_bee_does_over_the_ranks_that_saw_a_task() -> None:
    assert average_over_ranks([{"qa": 2.0, "chat": 1.0}, {"qa": 4.0}]) == {"chat": 1.0, "qa": 3.0}


def test_metrics_log_writes_jsonl_and_a_progress_line(tmp_path, capsys) -> None:
    log = MetricsLog(tmp_path, "run", max_steps=10)
    record = StepRecord(step=1, loss=2.5, task_loss={"qa": 2.5}, lr=1e-3, loss_scale=1.0, grad_norm=0.5,
                        applied=True, tokens=1000, step_seconds=0.5, data_wait_seconds=0.01)  # fmt: skip
    log.train_step(record)
    log.event("checkpoint", 1, tag="step-00000001")
    log.close()
    (written,) = read_metrics(tmp_path / "run.metrics.jsonl")
    assert written["tokens_per_second"] == 2000 and written["data_wait_fraction"] == pytest.approx(0.02)
    assert json.loads((tmp_path / "run.metrics.jsonl").read_text().splitlines()[1])["kind"] == "checkpoint"
    out = capsys.readouterr().out
    assert "| step 1/10 | loss 2.5000 |" in out and "| qa loss: 2.5000" in out
