"""Learning-rate schedules: noam equals BMTrain's Noam; warmup/decay shapes; the schedule object."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from trainer.schedules import LRSchedule, learning_rate


def bmtrain_noam(start_lr: float, warmup_iter: int, num_iter: int) -> float:
    """BMTrain's Noam, written out from its formula (warmup: n <= W)."""
    if num_iter <= warmup_iter:
        return start_lr / math.sqrt(warmup_iter) * num_iter / warmup_iter
    return start_lr / math.sqrt(num_iter)


@given(st.integers(1, 5000), st.integers(0, 100_000), st.floats(1e-4, 10.0))
def test_noam_is_bmtrain_noam(warmup: int, step: int, lr: float) -> None:
    assert learning_rate("noam", step, lr, warmup, 0) == pytest.approx(bmtrain_noam(lr, warmup, step), rel=1e-12)


def test_noam_starts_at_zero_and_peaks_at_lr_over_sqrt_warmup() -> None:
    assert learning_rate("noam", 0, 1.0, 100, 0) == 0.0
    rates = [learning_rate("noam", n, 1.0, 100, 0) for n in range(300)]
    assert max(rates) == pytest.approx(0.1) and rates.index(max(rates)) == 100


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_linear_warmup_reaches_lr_at_the_end_of_warmup(kind: str) -> None:
    rates = [learning_rate(kind, n, 2.0, 4, 20) for n in range(5)]
    assert rates[:4] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert rates[4] == pytest.approx(2.0)


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_decay_ends_at_min_lr_and_stays(kind: str) -> None:
    rates = [learning_rate(kind, n, 1.0, 10, 110, min_lr_ratio=0.1) for n in range(200)]
    assert rates[110] == pytest.approx(0.1) and rates[199] == pytest.approx(0.1)
    decay = rates[10:111]
    assert all(a >= b for a, b in zip(decay, decay[1:]))  # never rises during decay
    assert rates[60] == pytest.approx(0.55)  # halfway: cosine and linear agree


def test_bad_step_or_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="step must be >= 0"):
        learning_rate("cosine", -1, 1.0, 1, 1)
    with pytest.raises(ValueError, match="unknown schedule 'exp'"):
        learning_rate("exp", 0, 1.0, 1, 1)  # type: ignore[arg-type]


def test_schedule_sets_param_groups_and_resumes_from_its_state() -> None:
    params = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.AdamW(params, lr=123.0)
    schedule = LRSchedule(optimizer, "cosine", 1.0, 2, 10)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    for _ in range(5):
        schedule.step()
    state = schedule.state_dict()
    again = LRSchedule(torch.optim.AdamW(params, lr=0.0), "cosine", 1.0, 2, 10)
    again.load_state_dict(state)
    assert again.current_lr() == schedule.current_lr() == optimizer.param_groups[0]["lr"]
    assert again.get_last_lr() == [learning_rate("cosine", 5, 1.0, 2, 10)]
