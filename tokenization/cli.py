"""`bee vocab build` and `bee tokenize`: learn a vocabulary, and write token shards with statistics.

Exit codes: 0 done, 1 some datasets of a manifest failed (the others were done), 2 invalid input
(the message names the file and what is wrong).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

# The work is imported inside each command: pyarrow, tokenizers and Beam would slow down the
# start of `bee tokenize --help` and of every command of this group.

EXIT_FAILED = 1
EXIT_INVALID = 2

vocab_app = typer.Typer(
    name="vocab",
    help="Vocabularies in CPM-Bee's format (one token a line, id = line number).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _console() -> Console:
    # Piped output (a CI log, a file) gets a wide table instead of rich's 80-column default.
    return Console() if sys.stdout.isatty() else Console(width=160)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_INVALID)


@vocab_app.command("build")
def vocab_build(
    corpus: Annotated[
        list[Path],
        typer.Option("--corpus", "-c", help="Dataset folder (with meta.bin), raw .txt/.jsonl file or folder of them; repeatable."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Vocabulary file to write.")],
    size: Annotated[
        Optional[int], typer.Option("--size", "-n", help="At most this many tokens (fewer when the corpus has no more frequent pieces).")
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", help="VocabBuildConfig as YAML/JSON; the options below override it.")
    ] = None,
    min_char_count: Annotated[Optional[int], typer.Option(help="Characters seen fewer times are left out (they become <unk>) [default: 2].")] = None,
    min_piece_count: Annotated[Optional[int], typer.Option(help="Multi-character pieces seen fewer times are not learned [default: 2].")] = None,
    max_piece_chars: Annotated[Optional[int], typer.Option(help="Longest multi-character piece, in characters [default: 16].")] = None,
) -> None:
    """Learn a vocabulary from a corpus: CPM-Bee's special tokens, frequent characters, then
    frequent pieces learned by BPE. The same corpus and options give the same file."""
    from schemas import load_file
    from tokenization.vocab_build import VocabBuildConfig, build_vocab_file

    overrides = {
        name: value
        for name, value in [("size", size), ("min_char_count", min_char_count),
                            ("min_piece_count", min_piece_count), ("max_piece_chars", max_piece_chars)]
        if value is not None
    }  # fmt: skip
    try:
        base = load_file(VocabBuildConfig, config).model_dump() if config is not None else {}
        if "size" not in base and "size" not in overrides:
            raise _fail("--size is required (or a --config that sets size)")
        settings = VocabBuildConfig(**{**base, **overrides})
        with _vocab_progress() as progress:
            report = build_vocab_file(corpus, output, settings, progress)
    except (OSError, ValueError) as error:  # pydantic's ValidationError, SchemaError, DatasetCorrupt are ValueErrors
        raise _fail(str(error)) from None
    table = Table(title=f"vocabulary {report.path}", show_header=False)
    for label, value in [
        ("tokens", f"{report.size} (special {report.nspecial}, characters {report.nchars}, pieces {report.npieces})"),
        ("samples read", f"{report.samples_read} ({report.chars_read} characters)"),
        ("characters left out", f"{report.chars_left_out} (seen fewer than {settings.min_char_count} times)"),
        ("lines skipped", ", ".join(f"{k} {v}" for k, v in report.skipped.items()) or "none"),
        ("sha256", report.fingerprint),
    ]:
        table.add_row(label, value)
    _console().print(table)


@contextmanager
def _vocab_progress():
    """A progress line per pass of the vocabulary build (texts, characters, characters/s)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"),
               TextColumn("{task.fields[texts]:,} texts · {task.fields[chars]:,} characters · {task.fields[rate]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        tasks: dict[str, tuple[int, float]] = {}

        def progress(phase: str, texts: int, chars: int) -> None:
            if phase not in tasks:
                tasks[phase] = (bar.add_task(phase, total=None, texts=0, chars=0, rate=""), time.monotonic())
            task, started = tasks[phase]
            seconds = time.monotonic() - started
            rate = f"{chars / seconds / 1e6:.2f} M characters/s" if seconds > 0 and chars else ""
            bar.update(task, texts=texts, chars=chars, rate=rate)

        yield progress


def _stats_rows(stats) -> list[tuple[str, str]]:  # stats: tokenization.token_stats.TokenStats
    length = stats.length
    return [
        ("records", f"{stats.nrecords} ({stats.nrejected} rejected)"),
        ("tokens", str(stats.ntokens)),
        ("unknown-token rate", f"{stats.unk_rate:.4%} ({stats.unk_tokens} tokens)"),
        ("ext tables", f"{stats.records_with_ext} records ({stats.ext_record_rate:.2%}), {stats.ext_entries} entries, "
                       f"{stats.ext_special_entries} special"),
        ("length", f"min {length.min}, p50 {length.p50:g}, p90 {length.p90:g}, p99 {length.p99:g}, max {length.max}"),
    ]  # fmt: skip


def tokenize(
    target: Annotated[Path, typer.Argument(help="A dataset folder (with meta.bin), or a manifest (datasets.json) to do every dataset of.")],
    vocab: Annotated[Path, typer.Option("--vocab", "-v", help="Vocabulary file in CPM-Bee's format.")],
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Shards folder (dataset only; default <dataset>/token-shards).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes, one data file each.")] = 1,
    max_depth: Annotated[
        Optional[int], typer.Option(min=1, help="Depth cap of segment-relation buckets [default: 16, CPM-Bee's].")
    ] = None,
) -> None:
    """Write token shards (Arrow) for a dataset or every dataset of a manifest; only stale shards are redone.

    For a manifest, each entry gets ntokens, fingerprints.vocab, token_stats and token_shards."""
    from tokenization.retokenize import retokenize_manifest
    from tokenization.token_shards import tokenize_dataset

    console = _console()
    depth = {} if max_depth is None else {"max_depth": max_depth}
    try:
        if target.is_file():
            if output is not None:
                raise _fail("--output applies to a dataset; a manifest's shards go beside each dataset")
            report = retokenize_manifest(target, vocab, workers=workers, progress=sys.stderr.isatty(), **depth)
            table = Table(title=f"token shards of {target}")
            for column in ("dataset", "redone", "fresh", "removed", "tokens", "unk rate", "p50 length"):
                table.add_column(column)
            for item in report.datasets:
                table.add_row(item.identity, str(len(item.redone)), str(len(item.fresh)), str(len(item.removed)),
                              str(item.stats.ntokens), f"{item.stats.unk_rate:.4%}", f"{item.stats.length.p50:g}")  # fmt: skip
            for identity, error in report.failed.items():
                table.add_row(identity, "failed", "", "", "", "", "")
                typer.echo(f"error: {identity}: {error}", err=True)
            console.print(table)
            if not report.ok:
                raise typer.Exit(EXIT_FAILED)
            return
        result = tokenize_dataset(target, vocab, output, workers=workers, progress=sys.stderr.isatty(), **depth)
    except (OSError, ValueError) as error:  # DatasetCorrupt, SchemaError and VocabError are ValueErrors
        raise _fail(str(error)) from None
    table = Table(title=f"token shards of {result.dataset} in {result.shards_dir}", show_header=False)
    mb_s = result.redone_source_bytes / 1e6 / result.seconds if result.seconds > 0 else 0.0
    for label, value in [
        ("shards", f"{len(result.redone)} redone, {len(result.fresh)} fresh, {len(result.removed)} removed"),
        ("time", f"{result.seconds:.2f} s ({mb_s:.2f} MB/s of data redone)"),
        *_stats_rows(result.stats),
        ("vocab sha256", result.vocab_fingerprint),
    ]:
        table.add_row(label, value)
    console.print(table)
