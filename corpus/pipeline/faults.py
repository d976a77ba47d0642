"""Testing hook for the fault suite: SIGKILL the build at a named point.

`BEE_FAULT_KILL_AT=<point>` (the variable trainer/checkpoint.py's `inject_fault` reads, there
with a step) kills the process the moment it reaches `kill_at(<point>)`; unset, nothing happens.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "BEE_FAULT_KILL_AT"


def kill_at(point: str) -> None:
    """SIGKILL this process when `BEE_FAULT_KILL_AT` names `point`."""
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)
