"""Import Apache Beam without its import-time warning on stderr, and keep its harness logs
(worker start-up, channels, option parsing) out of a build's output unless asked for.

`import apache_beam` imports its BigQuery client, which calls `logging.warning("apitools not
found ...")` when the GCP extras are not installed. That module-level call also runs
`logging.basicConfig()`, so every later Beam log line (the harness's INFO and WARNING chatter)
would print too. Importing Beam while the root logger holds a handler of our own stops both;
the handler is removed again, so the root logger is left as it was.
"""

from __future__ import annotations

import logging


def _not_apitools(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("apitools not found")


def import_beam_quietly() -> None:
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)  # `logging.warning` calls basicConfig only when the root has no handler
    root.addFilter(_not_apitools)  # and where the root has handlers (Prefect's), the line is dropped
    try:
        import apache_beam  # noqa: F401
    finally:
        root.removeFilter(_not_apitools)
        root.removeHandler(guard)


import_beam_quietly()

# Level of Beam's loggers in this process (they relay the workers' log lines, which
# local_runner.worker_options starts at WARNING) when the flags set no harness level: a build
# prints its own progress and summary; `bee corpus build -v`
# shows the harness again.
HARNESS_LOG_LEVEL = "ERROR"
VERBOSE_FLAG = "--default_sdk_harness_log_level=INFO"


def quiet_harness(options):
    """`options` (PipelineOptions), unchanged; Beam's loggers here get the harness log level the
    flags chose, or HARNESS_LOG_LEVEL."""
    from apache_beam.options.pipeline_options import WorkerOptions

    level = options.view_as(WorkerOptions).default_sdk_harness_log_level or HARNESS_LOG_LEVEL
    logging.getLogger("apache_beam").setLevel(int(level) if str(level).isdigit() else str(level).upper())
    return options
