"""`bee trace RUN --step N [--row R]`: the samples a training step's batch held, with their text and source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from schemas import SchemaError, load_run_config


def _text(value: object, chars: int) -> str:
    text = value.get("text") if isinstance(value, dict) and isinstance(value.get("text"), str) else None
    text = text if text is not None else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= chars else text[:chars] + f"… ({len(text):,} chars)"


def trace(
    run: Annotated[Path, typer.Argument(help="The run config the run was trained with (run.yaml).", exists=True, dir_okay=False)],
    step: Annotated[int, typer.Option("--step", min=1, help="Optimizer step (as in the progress lines and metrics).")],
    row: Annotated[Optional[int], typer.Option("--row", min=0, help="Only this row of each micro-batch.")] = None,
    rank: Annotated[Optional[int], typer.Option("--rank", min=0, help="Only this rank.")] = None,
    chars: Annotated[int, typer.Option("--chars", min=0, help="Characters of each sample's text to print.")] = 300,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per sample instead of text.")] = False,
) -> None:
    """Which samples step N trained on: per rank, micro-batch and row, each sample's dataset, its
    record in the dataset, the input file:line it was built from, and its text."""
    from trainer.metrics import run_log_dir
    from trainer.trace import resolve_samples, traced_samples

    try:
        config = load_run_config(run)
        samples = traced_samples(run_log_dir(config), step, row, rank)
    except (SchemaError, FileNotFoundError, KeyError) as error:
        typer.echo(f"error: {error.args[0] if isinstance(error, KeyError) else error}", err=True)
        raise typer.Exit(2) from None
    for resolved in resolve_samples(samples, config.data.manifest):
        s = resolved.traced
        if as_json:
            typer.echo(json.dumps({
                "step": step, "rank": s.rank, "micro_batch": s.micro_batch, "row": s.row, "first_token": s.first_token,
                "tokens": s.tokens, "sample": s.sample, "dataset": s.dataset, "file_name": s.file_name, "block": s.block,
                "offset": s.offset, "record": resolved.index, "source": resolved.source, "value": resolved.value,
            }, ensure_ascii=False))
            continue
        role = "sample" if s.sample == 0 else f"in-context sample {s.sample}"
        record = "record ?" if resolved.index is None else f"record {resolved.index}"
        typer.echo(f"rank {s.rank} micro {s.micro_batch} row {s.row} tokens {s.first_token}..{s.first_token + s.tokens} "
                   f"{role}: {s.dataset} {s.file_name} block {s.block} offset {s.offset} = {record} <- {resolved.source}")
        if resolved.value is not None and chars:
            typer.echo("    " + _text(resolved.value, chars).replace("\n", "\n    "))
