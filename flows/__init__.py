"""Prefect flows and the `bee` command line: thin orchestration over corpus/, tokenization/, trainer/."""
