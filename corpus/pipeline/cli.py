"""`bee corpus build`: run a corpus build from a config file or from flags.

Own flags: the config file, `--input` .. `--manifest`, `--set SECTION.FIELD=VALUE` for any
build setting, and CPM-Bee build_dataset.py's `--min-length`, `--max-length`, `--data-type`.
Flags that Apache Beam's `PipelineOptions` define go to Beam (`--runner`,
`--direct_num_workers`, Flink/Spark/Dataflow options). Any other flag is an error that names it
and the nearest known flag: Beam would drop it with a warning and the build would run with
settings the user did not ask for.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import typing

import typer
import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from corpus.pipeline.build import (
    BuildError,
    BuildResult,
    build_corpus,
    skipped_by_reason,
)
from corpus.pipeline.flags import (
    FlagError,
    beam_argument_parser,
    check_beam_flags,
    flag_names,
)
from corpus.pipeline.inspect_cli import rejects_command, stats_command
from corpus.pipeline.progress import BuildProgress
from corpus.pipeline.quiet_beam import VERBOSE_FLAG
from schemas import BuildConfig, SchemaError, load_file, validate_data

app = typer.Typer(help="Corpus builds: raw txt/json in, Arrow shards, a CPM-Bee binary dataset and a manifest entry out.",
                  no_args_is_help=True)
console = Console(stderr=True)

# CPM-Bee's src/build_dataset.py flags: every file of the input is of `--data-type`; samples
# (pieces) shorter than `--min-length` characters are dropped, longer than `--max-length` split.
DATA_TYPES = {"txt": {"txt_suffixes": [""], "json_suffixes": []}, "json": {"txt_suffixes": [], "json_suffixes": [""]}}


@app.callback()
def corpus_group() -> None:
    """Corpus builds: raw txt/json in, Arrow shards, a CPM-Bee binary dataset and a manifest entry out."""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise FlagError(f"{self.prog}: {message}")


def argument_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="bee corpus build", add_help=False, allow_abbrev=False)
    parser.add_argument("config", nargs="?", help="build config (YAML or JSON); flags below override it")
    parser.add_argument("--input", action="append", help="input root (repeatable)")
    parser.add_argument("--output", help="output folder")
    parser.add_argument("--work-dir", help="checkpoint folder (default <output>.work)")
    parser.add_argument("--dataset-name")
    parser.add_argument("--task-name")
    parser.add_argument("--weight", type=float)
    parser.add_argument("--manifest", help="mixture manifest to upsert (default datasets.json beside output)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", dest="settings",
                        help="any build setting, e.g. --set split.max_length=300 (repeatable; VALUE is YAML)")
    parser.add_argument("--min-length", type=int, help="CPM-Bee build_dataset.py: = --set split.min_length=N")
    parser.add_argument("--max-length", type=int, help="CPM-Bee build_dataset.py: = --set split.max_length=N")
    parser.add_argument("--data-type", choices=sorted(DATA_TYPES),
                        help="CPM-Bee build_dataset.py: read every input file as txt lines or json lines, whatever its suffix")
    return parser


def _annotation_model(annotation) -> type[BaseModel] | None:
    """The pydantic model a field holds (directly or as `X | None`), or None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def setting_names(model: type[BaseModel] = BuildConfig, prefix: str = "") -> dict[str, object]:
    """`section.field` -> annotation of every build setting (nested models flattened)."""
    names: dict[str, object] = {}
    for name, info in model.model_fields.items():
        inner = _annotation_model(info.annotation)
        if inner is not None:
            names.update(setting_names(inner, f"{prefix}{name}."))
        else:
            names[prefix + name] = info.annotation
    return names


def apply_setting(data: dict, assignment: str) -> None:
    """Apply one `--set SECTION.FIELD=VALUE` to `data` (the config as a dict); VALUE is read as
    YAML (`300`, `true`, `null`, `[.txt, .md]`) except for plain string settings."""
    path, sep, text = assignment.partition("=")
    path = path.strip()
    names = setting_names()
    # A setting, or a key inside a dict-valued setting (quality.max_top_ngram_chars.2=0.3).
    leaf = next((name for name in names if path == name or path.startswith(name + ".")), None)
    if not sep or leaf is None:
        nearest = difflib.get_close_matches(path, list(names), n=1, cutoff=0.6)
        hint = f"; did you mean {nearest[0]}?" if nearest else ""
        problem = "expected SECTION.FIELD=VALUE" if not sep else f"unknown setting {path!r}{hint}"
        raise FlagError(f"--set {assignment}: {problem}")
    if names[leaf] is str and path == leaf:
        value: object = text
    else:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise FlagError(f"--set {assignment}: VALUE is not valid YAML: {error}") from None
    keys = path.split(".")
    node = data
    for depth, key in enumerate(keys[:-1], start=1):
        child = node.get(key)
        if not isinstance(child, dict):
            # inside a dict-valued setting, other keys keep their defaults
            child = node[key] = dict(_default(leaf)) if ".".join(keys[:depth]) == leaf else {}
        node = child
    node[keys[-1]] = value


def _default(name: str) -> object:
    """The default value of the setting `section.field` (of a section that has defaults)."""
    *sections, field = name.split(".")
    model: type[BaseModel] = BuildConfig
    for section in sections:
        model = _annotation_model(model.model_fields[section].annotation)
    return model().model_dump()[field]


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
    aliases = [f"split.min_length={args.min_length}" if args.min_length is not None else None,
               f"split.max_length={args.max_length}" if args.max_length is not None else None]
    if args.data_type:
        aliases += [f"read.{key}={value}" for key, value in DATA_TYPES[args.data_type].items()]
    for assignment in [a for a in aliases if a] + list(args.settings):
        apply_setting(data, assignment)
    return validate_data(BuildConfig, data, source)


def summary_table(result: BuildResult) -> Table:
    table = Table(title=f"corpus build: {result.output}" + (" (up to date)" if result.up_to_date else ""))
    table.add_column("")
    table.add_column("", justify="right")
    rows = [("records in", result.units_in), ("extra split pieces", result.extra_pieces),
            ("written", result.written), ("rejected", result.rejected)]
    rows += [(f"  rejected by {stage}", n) for stage, n in result.rejected_by_stage.items()]
    rows += [("dataset nbytes", result.nbytes), ("resumed input files/ranges", result.resumed_files),
             ("paths not read", len(result.skipped))]
    rows += [(f"  not read: {reason}", n) for reason, n in skipped_by_reason(result.skipped).items()]
    rows += [("workers", result.workers or "-"),
             ("input MB", f"{result.input_bytes / 1e6:.1f}"), ("seconds", f"{result.seconds:.1f}")]
    for label, value in rows:
        table.add_row(label, str(value))
    return table


def split_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the build's own arguments, the rest for Beam), each flag with its value, whether given as
    `--flag=value` or `--flag value`: `--direct_num_workers 2` without a config file must not
    make `2` the config file."""
    parsers = [argument_parser(), beam_argument_parser()]
    own: list[str] = []
    beam: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("--"):
            own.append(token)  # the config file (or a stray value, reported by the parser)
            continue
        name, has_value, _ = token.partition("=")
        action = next((p._option_string_actions[name] for p in parsers if name in p._option_string_actions), None)
        target = own if action is not None and action in parsers[0]._actions else beam
        target.append(token)
        if has_value or action is None or action.nargs == 0:
            continue  # an unknown flag's next token stays positional: the flag is reported anyway
        many = action.nargs in ("+", "*", argparse.REMAINDER)
        while i < len(argv) and not argv[i].startswith("--"):
            target.append(argv[i])
            i += 1
            if not many:
                break
    return own, beam


def run_build(argv: list[str]) -> BuildResult:
    """Parse `argv` (own flags + Beam flags) and build. Raises FlagError / SchemaError / BuildError / OSError."""
    own, beam_args = split_arguments(argv)
    check_beam_flags(beam_args, own_flags=flag_names(argument_parser()))
    args = argument_parser().parse_args(own)
    config = config_from_args(args)
    with BuildProgress(config, console):
        return build_corpus(config, beam_args, config_path=args.config, log=lambda line: console.print(line))


BEAM_FLAGS_HELP = """  -v, --verbose         show Apache Beam's harness logs (hidden otherwise)

Flags of Apache Beam's pipeline options go to Beam, e.g. --runner=FlinkRunner,
--direct_num_workers=2 (default: one worker per core); see infra/runners/*.yaml.
Any other flag is an error that names the nearest known flag."""


def build_help() -> str:
    """`bee corpus build --help`: the options of `argument_parser()` (the one parser of this
    command, so the help cannot drift from what is parsed) and where the other flags go."""
    return argument_parser().format_help().rstrip() + "\n\n" + BEAM_FLAGS_HELP + "\n"


@app.command(
    "build",
    add_help_option=False,  # -h/--help print build_help(): typer knows none of argparse's options
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def build_command(ctx: typer.Context) -> None:
    """Build a dataset: `bee corpus build build.yaml [FLAGS]` or
    `bee corpus build --input DIR --output DIR --dataset-name NAME --task-name TASK [FLAGS]`.

    Own flags: CONFIG, --input (repeatable), --output, --work-dir, --dataset-name, --task-name,
    --weight, --manifest, --set SECTION.FIELD=VALUE (any build setting, repeatable), and
    CPM-Bee's --min-length N, --max-length N, --data-type txt|json. Flags of Apache Beam's
    pipeline options go to Beam, e.g. --runner=FlinkRunner, --direct_num_workers=2 (default: one
    worker per core); any other flag is an error.
    """
    if {"-h", "--help"} & set(ctx.args):
        typer.echo(build_help())
        raise typer.Exit(0)
    args = [VERBOSE_FLAG if arg in ("-v", "--verbose") else arg for arg in ctx.args]
    try:
        result = run_build(args)
    except (SchemaError, BuildError, FileNotFoundError, ValueError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)  # paths must not break across lines
        raise typer.Exit(1) from None
    console.print(summary_table(result))
    console.print(result.balance_line(), soft_wrap=True)
    console.print(escape(result.summary_line()), soft_wrap=True)


app.command("rejects")(rejects_command)
app.command("stats")(stats_command)


if __name__ == "__main__":
    run_build(sys.argv[1:])
