"""Schedules of the deployments, in one place for `bee flows serve`, its command line and infra/prefect.yaml's test."""

DEFAULT_RETOKENIZE_CRON = "0 3 * * *"  # nightly, 03:00 UTC (infra/prefect.yaml declares the same)
