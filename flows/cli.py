"""The `bee` command line: one sub-command group per area, each defined next to its code.

Groups are imported when first used, so `bee manifest textconv` (which git runs for every
changed manifest) does not pay for importing Beam, torch and Prefect.
"""

from __future__ import annotations

from importlib import import_module

import click
import typer
from typer.core import TyperGroup

from flows.commands import demo_command, flows_app

# command name -> (module, attribute, summary): a typer app (a group) or a function (one
# command), and the line `bee --help` shows for it without importing it (a test checks each
# summary is the loaded command's own short help).
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "corpus": ("corpus.pipeline.cli", "app",
               "Corpus builds: raw txt/json in, Arrow shards, a CPM-Bee binary dataset and a manifest entry out."),
    "dataset": ("corpus.dataset.cli", "app", "CPM-Bee binary datasets (meta.bin + blocked data files)."),
    "manifest": ("corpus.manifest.cli", "app", "Mixture manifests (datasets.json): diff for review, show, validate, edit."),
    "vocab": ("tokenization.cli", "vocab_app", "Vocabularies in CPM-Bee's format (one token a line, id = line number)."),
    "tokenize": ("tokenization.cli", "tokenize",
                 "Write token shards (Arrow) for a dataset or every dataset of a manifest; only stale shards are redone."),
    "train": ("trainer.cli", "app",
              "Pretrain or fine-tune a CPM-Bee model with DeepSpeed ZeRO-3 (runs the deepspeed launcher)."),
    "trace": ("trainer.trace_cli", "trace",
              "Which samples step N trained on: per rank, micro-batch and row, each sample's dataset, its record "
              "in the dataset, the input file:line it was built from, and its text."),
    "export": ("trainer.cli", "export_command",
               "Write a checkpoint as CPM-Bee's (cpm_live names) or the HF port's files (bee export)."),
    "eval": ("trainer.eval_cli", "eval_command",
             "Accuracy by option perplexity and by generation (options), exact match and character F1 (free answers), per task."),
    "generate": ("trainer.generation.cli", "generate_command",
                 "Fill the <ans> of each sample by beam search (CPM-Bee's CPMBeeBeamSearch) or by sampling."),
}


def _load_command(name: str):
    module, attribute, _ = LAZY_COMMANDS[name]
    target = getattr(import_module(module), attribute)
    parent = typer.Typer()
    if isinstance(target, typer.Typer):
        parent.add_typer(target, name=name)  # a group even when it has a single command
    else:
        parent.command(name)(target)
    built = typer.main.get_command(parent)
    return built.commands[name] if isinstance(built, TyperGroup) else built


class LazyCommandGroup(TyperGroup):
    """A typer group that imports a sub-command's module only when that sub-command runs:
    listing the commands (`bee --help`) shows their summaries and imports nothing."""

    def list_commands(self, ctx) -> list[str]:
        return [*LAZY_COMMANDS, *(name for name in super().list_commands(ctx) if name not in LAZY_COMMANDS)]

    def resolve_command(self, ctx, args):
        if args and args[0] in LAZY_COMMANDS and args[0] not in self.commands:
            self.commands[args[0]] = _load_command(args[0])
        return super().resolve_command(ctx, args)

    def get_command(self, ctx, name: str):
        if name in LAZY_COMMANDS and name not in self.commands:
            return click.Command(name, help=LAZY_COMMANDS[name][2])  # a listing's stand-in
        return super().get_command(ctx, name)


app = typer.Typer(
    name="bee",
    cls=LazyCommandGroup,
    help="CPM-Bee toolchain: corpus builds, datasets, tokenization, training, mixture manifests.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(flows_app, name="flows")
app.command("demo")(demo_command)


if __name__ == "__main__":
    app()
