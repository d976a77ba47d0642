"""`bee manifest`: review and edit mixture manifests (diff, show, validate, textconv, edits).

Exit codes: 0 no change / valid, 1 `diff` found changes, 2 invalid input (the message names
the file and field). Also runnable alone as `python -m corpus.manifest.cli` (quicker to start,
which matters for git's textconv).
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from corpus.manifest.diff import diff_manifests
from corpus.manifest.edit import add_entry, remove_entry, set_weight
from corpus.manifest.lines import line_counts
from corpus.manifest.overview import overview
from corpus.manifest.render_diff import diff_to_json_data, render_markdown, render_terminal
from corpus.manifest.render_run_draws import (
    draws_to_json_data,
    render_diff_markdown,
    render_diff_terminal,
    render_show_markdown,
    render_show_terminal,
)
from corpus.manifest.render_overview import (
    overview_to_json_data,
    render_overview_markdown,
    render_overview_terminal,
    render_textconv,
)
from corpus.manifest.run_draws import DEFAULT_MAX_EPOCHS, RunDraws, RunShape, run_draws
from corpus.manifest.sources import load_file_side, load_revision_pair, parse_manifest_text
from corpus.manifest.validate import transform_scripts, validate_manifest
from schemas import SchemaError, load_run_config

app = typer.Typer(
    name="manifest",
    help="Mixture manifests (datasets.json): diff for review, show, validate, edit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

EXIT_CHANGED = 1
EXIT_INVALID = 2


class OutputFormat(str, Enum):
    terminal = "terminal"
    markdown = "markdown"
    json = "json"


FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="terminal (rich table), markdown (review comment) or json.")
]


RunOption = Annotated[
    Optional[Path],
    typer.Option("--run", help="A run config (run.yaml): also show the samples, tokens and epochs it draws from each dataset."),
]
WorldSizeOption = Annotated[int, typer.Option("--world-size", min=1, help="With --run: ranks (GPUs) the run trains on.")]
FillOption = Annotated[
    Optional[float], typer.Option("--fill", help="With --run: fraction of each row the packer fills (default 1.0).")
]
MetricsOption = Annotated[
    Optional[Path], typer.Option("--metrics", help="With --run: measure the packing fill from an earlier run's metrics.jsonl.")
]
MaxEpochsOption = Annotated[
    float, typer.Option("--max-epochs", help="With --run: flag datasets the run repeats more often than this.")
]


def _run_shape(run: Path, world_size: int, fill: float | None, metrics: Path | None) -> RunShape:
    try:
        return RunShape.of_run(load_run_config(run), world_size, fill, metrics)
    except (SchemaError, ValueError, OSError) as error:
        raise _fail(str(error)) from None


def _dump_json(data: dict) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_INVALID)


def _console() -> Console:
    # Piped output (a CI log, a file) gets a wide table instead of rich's 80-column default.
    return Console() if sys.stdout.isatty() else Console(width=160)


@app.command()
def diff(
    paths: Annotated[list[Path], typer.Argument(help="OLD NEW manifest files, or one file with --rev.", metavar="MANIFEST")],
    rev: Annotated[
        Optional[str],
        typer.Option("--rev", help="A..B (file at A vs at B), A...B (merge base of A and B vs B), A (vs working tree)."),
    ] = None,
    output: FormatOption = OutputFormat.terminal,
    run: RunOption = None,
    world_size: WorldSizeOption = 1,
    fill: FillOption = None,
    metrics: MetricsOption = None,
    max_epochs: MaxEpochsOption = DEFAULT_MAX_EPOCHS,
) -> None:
    """Compare two manifests: datasets added/removed, settings, share movements, counts, fingerprints.

    With --run, also what that run draws from each dataset before and after (tokens, epochs),
    flagging datasets repeated more than --max-epochs times or seen less than once.

    Exit 0 no change, 1 changes, 2 invalid input."""
    shape = _run_shape(run, world_size, fill, metrics) if run is not None else None
    try:
        if rev is not None:
            if len(paths) != 1:
                raise _fail("--rev takes exactly one manifest path")
            old, new = load_revision_pair(rev, paths[0])
        else:
            if len(paths) != 2:
                raise _fail("give two manifest files (OLD NEW), or one file with --rev")
            old, new = load_file_side(paths[0]), load_file_side(paths[1])
    except SchemaError as error:
        raise _fail(str(error)) from None
    old_lines, new_lines = line_counts(old.manifest, old.base_dir), line_counts(new.manifest, new.base_dir)
    result = diff_manifests(old.manifest, new.manifest, old_lines, new_lines, old_label=old.label, new_label=new.label)
    draws: tuple[RunDraws, RunDraws] | None = None
    if shape is not None:
        draws = (run_draws(old.manifest, old_lines, shape, max_epochs), run_draws(new.manifest, new_lines, shape, max_epochs))
    label = f"run {run}"
    if output is OutputFormat.markdown:
        typer.echo(render_markdown(result), nl=False)
        if draws:
            typer.echo("\n" + render_diff_markdown(*draws, label), nl=False)
    elif output is OutputFormat.json:
        data = diff_to_json_data(result)
        if draws:
            data["run"] = {"old": draws_to_json_data(draws[0]), "new": draws_to_json_data(draws[1])}
        _dump_json(data)
    else:
        render_terminal(result, _console())
        if draws:
            render_diff_terminal(*draws, _console(), label)
    raise typer.Exit(0 if result.is_empty else EXIT_CHANGED)


@app.command()
def show(
    manifest: Path,
    output: FormatOption = OutputFormat.terminal,
    run: RunOption = None,
    world_size: WorldSizeOption = 1,
    fill: FillOption = None,
    metrics: MetricsOption = None,
    max_epochs: MaxEpochsOption = DEFAULT_MAX_EPOCHS,
) -> None:
    """The datasets of a manifest with effective shares, lines, tokens and fingerprints.

    With --run, also what that run draws from each dataset (samples, tokens, epochs)."""
    shape = _run_shape(run, world_size, fill, metrics) if run is not None else None
    try:
        side = load_file_side(manifest)
    except SchemaError as error:
        raise _fail(str(error)) from None
    counts = line_counts(side.manifest, side.base_dir)
    view = overview(side.manifest, counts)
    draws = run_draws(side.manifest, counts, shape, max_epochs) if shape is not None else None
    label = f"run {run}"
    if output is OutputFormat.markdown:
        typer.echo(render_overview_markdown(view, str(manifest)), nl=False)
        if draws:
            typer.echo("\n" + render_show_markdown(draws, label), nl=False)
    elif output is OutputFormat.json:
        data = overview_to_json_data(view)
        if draws:
            data["run"] = draws_to_json_data(draws)
        _dump_json(data)
    else:
        render_overview_terminal(view, _console(), str(manifest))
        if draws:
            render_show_terminal(draws, _console(), label)


@app.command()
def validate(manifest: Path) -> None:
    """Check schema, weights > 0, dataset folders and meta.bin, transforms; list every problem,
    and every transform script (code that training runs)."""
    problems = validate_manifest(manifest)
    for problem in problems:
        typer.echo(problem, err=True)
    scripts = transform_scripts(manifest)
    if scripts:
        typer.echo(f"{manifest}: {len(scripts)} transform script(s) are Python code that training will import and run "
                   "(CPM-Bee's design); review them as code before training:")  # fmt: skip
        for identity, script in scripts:
            typer.echo(f"  {identity}: {script}")
    if problems:
        typer.echo(f"{manifest}: {len(problems)} problem(s)", err=True)
        raise typer.Exit(EXIT_INVALID)
    typer.echo(f"{manifest}: ok")


@app.command()
def textconv(file: Path) -> None:
    """Print the readable form git diffs (the `bee-manifest` diff driver's textconv).

    Uses only what the file records (git hands over a temporary copy, so dataset folders
    cannot be found); a file that is not a valid manifest is printed as is under a note.
    """
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _fail(f"{file}: cannot read: {error}") from None
    try:
        manifest = parse_manifest_text(text, str(file))
    except SchemaError as error:
        # git diff must still work on a broken manifest: show the raw text, flagged.
        typer.echo("# not a valid mixture manifest: " + str(error).replace("\n", "; "))
        typer.echo(text, nl=False)
        return
    typer.echo(render_textconv(overview(manifest, line_counts(manifest, None))), nl=False)


@app.command("set-weight")
def set_weight_command(manifest: Path, dataset: Annotated[str, typer.Argument(help="TASK.DATASET")], weight: float) -> None:
    """Set one dataset's weight; the rest of the file is left as it was."""
    try:
        set_weight(manifest, dataset, weight)
    except SchemaError as error:
        raise _fail(str(error)) from None
    typer.echo(f"{manifest}: {dataset} weight = {weight:g}")


def _parse_transforms(value: str) -> str | list:
    """A path to a transform.py, or a JSON list of `$field` mappings."""
    if value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise _fail(f"--transforms: invalid JSON: {error.msg}") from None
    return value


def _parse_incontext_weight(value: str) -> list[float]:
    """`0.5,0.5` or `[0.5, 0.5]`."""
    try:
        parsed = json.loads(value if value.lstrip().startswith("[") else f"[{value}]")
    except json.JSONDecodeError as error:
        raise _fail(f"--incontext-weight: expected numbers like 0.5,0.5 ({error.msg})") from None
    return parsed


@app.command()
def add(
    manifest: Path,
    dataset_name: Annotated[str, typer.Option(help="Dataset name (identity is TASK.DATASET).")],
    task_name: Annotated[str, typer.Option(help="Task name.")],
    path: Annotated[str, typer.Option(help="Dataset folder, relative to the manifest's folder or absolute.")],
    weight: Annotated[Optional[float], typer.Option(help="Sampling weight (CPM-Bee's default 1.0 when left out).")] = None,
    incontext_weight: Annotated[Optional[str], typer.Option(help="Weights of 0, 1, 2... in-context samples: 0.5,0.5")] = None,
    transforms: Annotated[Optional[str], typer.Option(help="Path to a transform.py, or a JSON list of $field mappings.")] = None,
) -> None:
    """Append a dataset (the file is created when missing)."""
    fields: dict = {"dataset_name": dataset_name, "task_name": task_name, "path": path}
    if weight is not None:
        fields["weight"] = weight
    if incontext_weight is not None:
        fields["incontext_weight"] = _parse_incontext_weight(incontext_weight)
    if transforms is not None:
        fields["transforms"] = _parse_transforms(transforms)
    try:
        add_entry(manifest, fields)
    except SchemaError as error:
        raise _fail(str(error)) from None
    typer.echo(f"{manifest}: added {task_name}.{dataset_name}")
    if not (manifest.resolve().parent / path).is_dir():
        typer.echo(f"warning: dataset folder {path} does not exist here (bee manifest validate lists such problems)", err=True)


@app.command()
def remove(manifest: Path, dataset: Annotated[str, typer.Argument(help="TASK.DATASET")]) -> None:
    """Remove one dataset; the others keep their order."""
    try:
        remove_entry(manifest, dataset)
    except SchemaError as error:
        raise _fail(str(error)) from None
    typer.echo(f"{manifest}: removed {dataset}")


if __name__ == "__main__":
    app()
