"""Learning-rate schedules: a pure function of the number of optimizer steps applied so far.

`noam` is CPM-Bee's (BMTrain's `Noam`): with `lr` the configured rate, W the warmup steps and
n the steps applied, `lr / sqrt(W) * n / W` while n <= W, then `lr / sqrt(n)`; so the first
step runs at 0 and the peak, reached at n = W, is `lr / sqrt(W)`. `cosine` and `linear` warm
up linearly to `lr` over W steps, then decay to `min_lr_ratio * lr` at `decay_steps`
(cosine or straight line) and stay there; `constant` warms up and stays at `lr`.

`LRSchedule` sets the rate on an optimizer's param groups; DeepSpeed steps it only when an
optimizer step was applied (a step skipped for overflow does not advance the schedule, as in
BMTrain), and saves it in its checkpoints through `state_dict`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

ScheduleKind = Literal["noam", "cosine", "linear", "constant"]


def learning_rate(
    kind: ScheduleKind, step: int, lr: float, warmup_steps: int, decay_steps: int, min_lr_ratio: float = 0.0
) -> float:
    """The learning rate for the optimizer step that follows `step` applied steps.

    Takes the schedule kind, the steps applied so far (>= 0), the base rate, the warmup length,
    the step at which decay ends (cosine/linear) and the final fraction of `lr`.
    Returns the rate. Raises ValueError for a negative step or an unknown kind.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if kind == "noam":
        if warmup_steps <= 0:
            # no warmup: BMTrain's formula would divide by zero; decay from the first step
            return lr / math.sqrt(max(step, 1))
        if step <= warmup_steps:
            return lr / math.sqrt(warmup_steps) * step / warmup_steps
        return lr / math.sqrt(step)
    if kind not in ("cosine", "linear", "constant"):
        raise ValueError(f"unknown schedule {kind!r}; known: noam, cosine, linear, constant")
    if step < warmup_steps:
        # (step + 1): the first step already trains, at lr / warmup_steps
        return lr * (step + 1) / warmup_steps
    if kind == "constant":
        return lr
    min_lr = lr * min_lr_ratio
    span = max(decay_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    if kind == "linear":
        return lr - (lr - min_lr) * progress
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


class LRSchedule:
    """Sets `learning_rate(...)` on every param group of `optimizer`; `step()` after each applied step.

    Same interface as a torch LR scheduler where DeepSpeed uses one (`step`, `get_last_lr`,
    `state_dict`, `load_state_dict`).
    """

    def __init__(
        self,
        optimizer: Any,
        kind: ScheduleKind,
        lr: float,
        warmup_steps: int,
        decay_steps: int,
        min_lr_ratio: float = 0.0,
    ) -> None:
        learning_rate(kind, 0, lr, warmup_steps, decay_steps, min_lr_ratio)  # validate now, not mid-run
        self.optimizer = optimizer
        self.kind, self.lr, self.warmup_steps = kind, lr, warmup_steps
        self.decay_steps, self.min_lr_ratio = decay_steps, min_lr_ratio
        self.applied_steps = 0
        self._apply()

    def current_lr(self) -> float:
        """The rate the next optimizer step uses."""
        return self.rate_at(self.applied_steps)

    def rate_at(self, step: int) -> float:
        """The rate of the optimizer step that follows `step` applied steps."""
        return learning_rate(self.kind, step, self.lr, self.warmup_steps, self.decay_steps, self.min_lr_ratio)

    def _apply(self) -> None:
        rate = self.current_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = rate

    def start_at(self, step: int) -> None:
        """Continue from `step` applied steps (CPM-Bee's `--start-step`): the next rate is `rate_at(step)`."""
        self.rate_at(step)  # validates the step
        self.applied_steps = step
        self._apply()

    def step(self, *args: Any, **kwargs: Any) -> None:
        """One optimizer step was applied: move to the next rate."""
        self.applied_steps += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [self.current_lr()] * len(self.optimizer.param_groups)

    def state_dict(self) -> dict[str, Any]:
        return {"applied_steps": self.applied_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.applied_steps = int(state["applied_steps"])
        self._apply()
