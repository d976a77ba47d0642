"""Testing hooks for the fault suites: the corpus build and the trainer call them at named points;
the tests set an environment variable (which the processes a launcher starts inherit) to make a
point fail. Unset, every hook does nothing.

    BEE_FAULT_KILL_AT=<point>           SIGKILL the process reaching `fault_point(<point>)`
    BEE_FAULT_KILL_AT=<point>:<step>    ... reaching `fault_point(<point>, <step>)` (the trainer)
    BEE_FAULT_NAN_FROM_STEP=<n>         `nan_loss_due(step)` is true from step n on

Points: the corpus build's `before_swap`, `swap_between_renames`, `swap_before_cleanup`,
`before_manifest` (corpus/pipeline/build.py, output_folder.py, remote_output.py); the trainer's
`save` (rank 0, DeepSpeed's files written, its own not yet) and `step` (after a step's
backward passes and optimizer step, before the step is counted) (trainer/pretrain.py).
"""

from __future__ import annotations

import os
import signal

KILL_AT_ENV = "BEE_FAULT_KILL_AT"
NAN_FROM_STEP_ENV = "BEE_FAULT_NAN_FROM_STEP"


def fault_point(point: str, step: int | None = None) -> None:
    """SIGKILL this process when `BEE_FAULT_KILL_AT` names `point` (or `point:step` when a step is given)."""
    wanted = os.environ.get(KILL_AT_ENV)
    if wanted is not None and wanted == (point if step is None else f"{point}:{step}"):
        os.kill(os.getpid(), signal.SIGKILL)


def nan_loss_due(step: int) -> bool:
    """Whether the loss of `step` is to be made NaN: `BEE_FAULT_NAN_FROM_STEP` is set and at most `step`."""
    start = os.environ.get(NAN_FROM_STEP_ENV)
    return start is not None and step >= int(start)
