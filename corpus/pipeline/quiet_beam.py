"""Import Apache Beam without its import-time warning on stderr.

`import apache_beam` imports its BigQuery client, which calls `logging.warning("apitools not
found ...")` when the GCP extras are not installed. That module-level call also runs
`logging.basicConfig()`, so every later Beam log line (the harness's INFO and WARNING chatter)
would print too. Importing Beam while the root logger holds a handler of our own stops both;
the handler is removed again, so the root logger is left as it was.
"""

from __future__ import annotations

import logging


def import_beam_quietly() -> None:
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)  # `logging.warning` calls basicConfig only when the root has no handler
    try:
        import apache_beam  # noqa: F401
    finally:
        root.removeHandler(guard)


import_beam_quietly()
