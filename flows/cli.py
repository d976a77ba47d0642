"""The `bee` command line: one sub-command group per area, each defined next to its code."""

from __future__ import annotations

import typer

from corpus.dataset.cli import app as dataset_app
from corpus.manifest.cli import app as manifest_app
from corpus.pipeline.cli import app as corpus_app
from flows.commands import demo_command, flows_app
from tokenization.cli import tokenize as tokenize_command, vocab_app

app = typer.Typer(
    name="bee",
    help="CPM-Bee toolchain: corpus builds, datasets, tokenization, training, mixture manifests.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(dataset_app, name="dataset")
app.add_typer(manifest_app, name="manifest")
app.add_typer(corpus_app, name="corpus")
app.add_typer(vocab_app, name="vocab")
app.command("tokenize")(tokenize_command)
app.add_typer(flows_app, name="flows")
app.command("demo")(demo_command)


if __name__ == "__main__":
    app()
