"""`bee corpus rejects` and `bee corpus stats`: a finished build's rejects and distributions,
printed as tables (the queries are in shard_stats.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)


def _print_table(title: str, frame, floats: str = "{:.4g}") -> None:
    console.print(f"[bold]{title}[/bold]", soft_wrap=True, highlight=False)  # a table title would wrap at its width
    table = Table()
    for name, dtype in frame.schema.items():
        table.add_column(name, justify="right" if dtype.is_numeric() else "left", overflow="fold")
    for row in frame.iter_rows():
        table.add_row(*(floats.format(v) if isinstance(v, float) else str(v) for v in row))
    console.print(table)


def rejects_command(
    output: Annotated[Path, typer.Argument(help="Output folder of a corpus build (holds rejects/).")],
    stage: Annotated[Optional[str], typer.Option(help="Only this stage (read, clean, quality, split, exact_dedupe, ...).")] = None,
    reason: Annotated[Optional[str], typer.Option(help="Only this reason (too_short, near_duplicate, ...).")] = None,
    sample: Annotated[int, typer.Option(min=0, help="Examples shown per stage/reason (input order).")] = 3,
) -> None:
    """Counts of rejected records by stage and reason, and examples of each."""
    from corpus.pipeline.shard_stats import NoShards, rejects_summary

    try:
        summary = rejects_summary(output, stage, reason, sample)
    except NoShards as error:
        errors.print(f"[red]error:[/red] {error}", soft_wrap=True)
        raise typer.Exit(1) from None
    _print_table(f"{summary.total} rejected records in {output}", summary.counts)
    if summary.examples.height:
        _print_table("examples", summary.examples)


def stats_command(
    output: Annotated[Path, typer.Argument(help="Output folder of a corpus build (holds arrow/).")],
) -> None:
    """Length and quality-score distributions over the kept records' shards."""
    from corpus.pipeline.shard_stats import NoShards, shard_stats

    try:
        stats = shard_stats(output)
    except NoShards as error:
        errors.print(f"[red]error:[/red] {error}", soft_wrap=True)
        raise typer.Exit(1) from None
    _print_table(f"{stats.records} kept records in {output}", stats.by_kind)
    _print_table("lengths", stats.lengths)
    if stats.scores.height:
        _print_table("quality scores (records the quality filter measured)", stats.scores)
