"""`bee corpus build`: run a corpus build from a config file or from flags.

Own flags are parsed with `parse_known_args`; everything else goes to Beam unchanged
(`--runner`, `--direct_num_workers`, `--direct_running_mode`, Flink/Spark/Dataflow options).
"""

from __future__ import annotations

import argparse
import sys

import typer
from rich.console import Console
from rich.table import Table

from corpus.pipeline.build import BuildError, BuildResult, build_corpus
from schemas import BuildConfig, SchemaError, load_file, validate_data

app = typer.Typer(help="Corpus builds: raw txt/json in, Arrow shards, a CPM-Bee binary dataset and a manifest entry out.",
                  no_args_is_help=True)
console = Console(stderr=True)


@app.callback()
def corpus_group() -> None:
    """Corpus builds: raw txt/json in, Arrow shards, a CPM-Bee binary dataset and a manifest entry out."""


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bee corpus build", add_help=False)
    parser.add_argument("config", nargs="?", help="build config (YAML or JSON); flags below override it")
    parser.add_argument("--input", action="append", help="input root (repeatable)")
    parser.add_argument("--output", help="output folder")
    parser.add_argument("--work-dir", help="checkpoint folder (default <output>.work)")
    parser.add_argument("--dataset-name")
    parser.add_argument("--task-name")
    parser.add_argument("--weight", type=float)
    parser.add_argument("--manifest", help="mixture manifest to upsert (default datasets.json beside output)")
    return parser


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    """The config file (if any) with command-line overrides; raises SchemaError naming the field."""
    data: dict = {}
    source = "command line"
    if args.config:
        data = load_file(BuildConfig, args.config).model_dump(exclude_unset=True)
        source = args.config
    overrides = {"input": args.input, "output": args.output, "work_dir": args.work_dir, "dataset_name": args.dataset_name,
                 "task_name": args.task_name, "weight": args.weight, "manifest": args.manifest}
    data.update({key: value for key, value in overrides.items() if value is not None})
    return validate_data(BuildConfig, data, source)


def summary_table(result: BuildResult) -> Table:
    table = Table(title=f"corpus build: {result.output}" + (" (up to date)" if result.up_to_date else ""))
    table.add_column("")
    table.add_column("", justify="right")
    for label, value in [("records in", result.units_in), ("extra split pieces", result.extra_pieces),
                         ("written", result.written), ("rejected", result.rejected),
                         ("dataset nbytes", result.nbytes), ("resumed input files", result.resumed_files),
                         ("seconds", f"{result.seconds:.1f}")]:
        table.add_row(label, str(value))
    return table


def run_build(argv: list[str]) -> BuildResult:
    """Parse `argv` (own flags + Beam flags) and build. Raises SchemaError / BuildError / OSError."""
    args, beam_args = argument_parser().parse_known_args(argv)
    config = config_from_args(args)
    return build_corpus(config, beam_args, config_path=args.config, log=lambda line: console.print(line))


@app.command(
    "build",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": ["-h", "--help"]},
)
def build_command(ctx: typer.Context) -> None:
    """Build a dataset: `bee corpus build build.yaml [BEAM FLAGS]` or
    `bee corpus build --input DIR --output DIR --dataset-name NAME --task-name TASK [BEAM FLAGS]`.

    Own flags: CONFIG, --input (repeatable), --output, --work-dir, --dataset-name, --task-name,
    --weight, --manifest. Any other flag goes to Apache Beam unchanged, e.g.
    --runner=FlinkRunner, --direct_num_workers=2 --direct_running_mode=multi_processing.
    """
    try:
        result = run_build(list(ctx.args))
    except (SchemaError, BuildError, FileNotFoundError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}", soft_wrap=True)  # paths must not break across lines
        raise typer.Exit(1) from None
    console.print(summary_table(result))
    console.print(result.balance_line())


if __name__ == "__main__":
    run_build(sys.argv[1:])
