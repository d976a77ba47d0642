"""The `bee` command line: one sub-command group per area, each defined next to its code.

Groups are imported when first used, so `bee manifest textconv` (which git runs for every
changed manifest) does not pay for importing Beam, torch and Prefect.
"""

from __future__ import annotations

from importlib import import_module

import typer
from typer.core import TyperGroup

from flows.commands import demo_command, flows_app

# command name -> (module, attribute): a typer app (a group) or a function (one command).
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "corpus": ("corpus.pipeline.cli", "app"),
    "dataset": ("corpus.dataset.cli", "app"),
    "manifest": ("corpus.manifest.cli", "app"),
    "vocab": ("tokenization.cli", "vocab_app"),
    "tokenize": ("tokenization.cli", "tokenize"),
    "train": ("trainer.cli", "app"),
    "trace": ("trainer.trace_cli", "trace"),
    "export": ("trainer.cli", "export_command"),
    "generate": ("trainer.generation.cli", "generate_command"),
}


def _load_command(name: str):
    module, attribute = LAZY_COMMANDS[name]
    target = getattr(import_module(module), attribute)
    parent = typer.Typer()
    if isinstance(target, typer.Typer):
        parent.add_typer(target, name=name)  # a group even when it has a single command
    else:
        parent.command(name)(target)
    built = typer.main.get_command(parent)
    return built.commands[name] if isinstance(built, TyperGroup) else built


class LazyCommandGroup(TyperGroup):
    """A typer group that imports a sub-command's module only when that sub-command runs."""

    def list_commands(self, ctx) -> list[str]:
        return [*LAZY_COMMANDS, *(name for name in super().list_commands(ctx) if name not in LAZY_COMMANDS)]

    def get_command(self, ctx, name: str):
        if name in LAZY_COMMANDS and name not in self.commands:
            self.commands[name] = _load_command(name)
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
