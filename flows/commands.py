"""`bee flows serve` and `bee demo`: the command-line doors to the Prefect flows."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.schedules import DEFAULT_RETOKENIZE_CRON

flows_app = typer.Typer(help="Prefect deployments: corpus-build, retokenize (scheduled), pretrain, evaluate.", no_args_is_help=True)


@flows_app.callback()
def flows_group() -> None:
    """Prefect deployments: corpus-build, retokenize (scheduled), pretrain."""


@flows_app.command("serve")
def serve_command(
    manifest: str = typer.Option(..., help="Manifest the scheduled re-tokenization refreshes."),
    vocab: str = typer.Option(..., help="Vocabulary the scheduled re-tokenization uses."),
    cron: str = typer.Option(DEFAULT_RETOKENIZE_CRON, help="Schedule of the re-tokenization (cron, UTC)."),
) -> None:
    """Register the deployments with the server in PREFECT_API_URL and run their flow runs.

    Then: `prefect deployment run 'corpus-build/corpus-build' --param build_config=build.yaml`.
    """
    from flows.serve import serve_deployments

    serve_deployments(manifest, vocab, cron)


def demo_command(
    output: Path = typer.Option(Path("demo-output"), help="Folder for everything the demo makes."),
    steps: int = typer.Option(40, min=1, help="Training steps of the tiny model."),
    processes: int = typer.Option(2, min=1, help="DeepSpeed processes (CPU)."),
) -> None:
    """Run the whole path on the embedded sample corpus: build, vocab, tokenize, train, summary."""
    from flows.demo import run_demo

    run_demo(output, steps, processes)
