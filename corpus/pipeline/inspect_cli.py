"""`bee corpus rejects` and `bee corpus stats`: a finished build's rejects and distributions,
printed as tables (the queries are in shard_stats.py). OUTPUT is a local folder or the URL of
a remote build (`s3://`, `gs://`); credentials come from the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, ...), an S3-compatible endpoint from
--s3-endpoint-url or AWS_ENDPOINT_URL."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)


OUTPUT_HELP = "Output of a corpus build: a folder, or the URL of a remote one (s3://bucket/prefix, gs://...)."
Endpoint = Annotated[Optional[str], typer.Option(
    help="S3-compatible endpoint of an s3:// OUTPUT (as `bee corpus build --s3_endpoint_url`); default: AWS_ENDPOINT_URL or AWS.")]
Region = Annotated[Optional[str], typer.Option(help="Region of an s3:// OUTPUT; default: AWS_DEFAULT_REGION.")]


def beam_flags(s3_endpoint_url: str | None, s3_region_name: str | None) -> list[str]:
    """The Beam filesystem flags (those `bee corpus build` takes) for the options given."""
    return [f"--{name}={value}" for name, value in (("s3_endpoint_url", s3_endpoint_url),
                                                    ("s3_region_name", s3_region_name)) if value]


def _print_table(title: str, frame, floats: str = "{:.4g}") -> None:
    console.print(f"[bold]{title}[/bold]", soft_wrap=True, highlight=False)  # a table title would wrap at its width
    table = Table()
    for name, dtype in frame.schema.items():
        table.add_column(name, justify="right" if dtype.is_numeric() else "left", overflow="fold")
    for row in frame.iter_rows():
        table.add_row(*(floats.format(v) if isinstance(v, float) else str(v) for v in row))
    console.print(table)


def rejects_command(
    output: Annotated[str, typer.Argument(help=OUTPUT_HELP + " Reads its rejects/ shards.")],
    stage: Annotated[Optional[str], typer.Option(help="Only this stage (read, clean, quality, split, exact_dedupe, ...).")] = None,
    reason: Annotated[Optional[str], typer.Option(help="Only this reason (too_short, near_duplicate, ...).")] = None,
    sample: Annotated[int, typer.Option(min=0, help="Examples shown per stage/reason (input order).")] = 3,
    s3_endpoint_url: Endpoint = None,
    s3_region_name: Region = None,
) -> None:
    """Counts of rejected records by stage and reason, and examples of each."""
    from corpus.pipeline.output_folder import UnsafeOutput
    from corpus.pipeline.shard_stats import NoShards, rejects_summary

    try:
        summary = rejects_summary(output, stage, reason, sample,
                                  pipeline_args=beam_flags(s3_endpoint_url, s3_region_name))
    except (NoShards, UnsafeOutput) as error:
        errors.print(f"[red]error:[/red] {error}", soft_wrap=True)
        raise typer.Exit(1) from None
    _print_table(f"{summary.total} rejected records in {output}", summary.counts)
    if summary.examples.height:
        _print_table("examples", summary.examples)


def stats_command(
    output: Annotated[str, typer.Argument(help=OUTPUT_HELP + " Reads its arrow/ shards.")],
    s3_endpoint_url: Endpoint = None,
    s3_region_name: Region = None,
) -> None:
    """Length and quality-score distributions over the kept records' shards."""
    from corpus.pipeline.output_folder import UnsafeOutput
    from corpus.pipeline.shard_stats import NoShards, shard_stats

    try:
        stats = shard_stats(output, beam_flags(s3_endpoint_url, s3_region_name))
    except (NoShards, UnsafeOutput) as error:
        errors.print(f"[red]error:[/red] {error}", soft_wrap=True)
        raise typer.Exit(1) from None
    _print_table(f"{stats.records} kept records in {output}", stats.by_kind)
    _print_table("lengths", stats.lengths)
    if stats.scores.height:
        _print_table("quality scores (records the quality filter measured)", stats.scores)
