"""The `bee` command line: one sub-command group per area, each defined next to its code."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="bee",
    help="CPM-Bee toolchain: corpus builds, datasets, tokenization, training, mixture manifests.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


if __name__ == "__main__":
    app()
