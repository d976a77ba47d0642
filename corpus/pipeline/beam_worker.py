"""The worker process of local multi-process builds: Beam's SDK harness (`sdk_worker_main`)
with Beam imported quietly.

Beam starts its own `python -m apache_beam.runners.worker.sdk_worker_main`, whose import of
Beam prints the "apitools not found" warning and, through that warning's `basicConfig()`,
writes the harness's start-up lines ("Logging handler created", "No semi_persistent_directory
found") straight to the terminal. Started through this module (`local_runner.WORKER_COMMAND`),
those lines go only to the runner's log relay, where the build's harness log level applies
(`quiet_beam.quiet_harness`; `-v` shows them).
"""

from __future__ import annotations

import sys

from corpus.pipeline import quiet_beam  # noqa: F401  (first: imports apache_beam quietly)
from apache_beam.runners.worker import sdk_worker_main  # noqa: E402

if __name__ == "__main__":
    sdk_worker_main.main(sys.argv)
