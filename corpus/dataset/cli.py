"""`bee dataset`: inspect, check and edit CPM-Bee binary datasets from the command line.

Each command calls the library function of the same job; errors print one line
(`error: <what, where>`) and exit with status 1.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from schemas import DEFAULT_BLOCK_SIZE, SchemaError

from corpus.dataset.blockfile import iter_file_payloads
from corpus.dataset.convert import convert_dataset
from corpus.dataset.maintenance import compact_dataset, mask_dataset, merge_dataset
from corpus.dataset.meta import DatasetCorrupt, read_meta
from corpus.dataset.reader import iter_records
from corpus.dataset.serializer import payload_kind
from corpus.dataset.shuffle import DEFAULT_SHUFFLE_BUCKET_SIZE, shuffle_dataset
from corpus.dataset.verify import verify_dataset

app = typer.Typer(name="dataset", help="CPM-Bee binary datasets (meta.bin + blocked data files).", no_args_is_help=True)


def console() -> Console:
    """A console made per command, so it sizes itself to the terminal (or COLUMNS) of this run."""
    return Console()


def errors() -> Console:
    """The same, on stderr."""
    return Console(stderr=True)


F = TypeVar("F", bound=Callable[..., Any])
_USER_ERRORS = (DatasetCorrupt, SchemaError, FileNotFoundError, FileExistsError, KeyError, ValueError, OSError)


def _one_line_errors(command: F) -> F:
    """Turn the errors a user can act on into `error: ...` on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except _USER_ERRORS as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
            if isinstance(error, OSError) and error.filename and str(error.filename) not in message:
                message = f"{error.filename}: {error.strerror}"
            lines = str(message).splitlines() or [type(error).__name__]
            for line in lines:
                errors().print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _serializer_of(path: Path, info) -> str:
    recorded = info.extra_keys.get("serializer")
    if recorded:
        return str(recorded)
    try:
        for _, payload in iter_file_payloads(path, info):  # older datasets: look at the first record
            return payload_kind(payload) + " (sniffed)"
    except FileNotFoundError:
        return "(file missing)"
    except DatasetCorrupt:
        return "(corrupt: run verify)"
    return "-"


@app.command()
@_one_line_errors
def inspect(path: Path = typer.Argument(..., help="Dataset folder.")) -> None:
    """Table of the data files: blocks, lines, bytes, serializer, mask."""
    infos = read_meta(path)
    table = Table(title=str(path))
    for column in ("file", "blocks", "block size", "lines", "bytes", "serializer", "masked", "version"):
        table.add_column(column, justify="right" if column in ("blocks", "block size", "lines", "bytes") else "left")
    for info in infos:
        table.add_row(
            info.file_name,
            f"{info.block_begin}-{info.block_end} ({info.nblocks})",
            str(info.block_size),
            f"{info.nlines:,}",
            f"{info.nbytes:,}",
            _serializer_of(path, info),
            "yes" if info.mask else "",
            str(info.extra_keys.get("format_version", "-")),
        )
    table.add_section()
    table.add_row(
        f"{len(infos)} files",
        str(infos[-1].block_end if infos else 0),
        "",
        f"{sum(i.nlines for i in infos):,}",
        f"{sum(i.nbytes for i in infos):,}",
    )
    console().print(table)


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


@app.command()
@_one_line_errors
def head(
    path: Path = typer.Argument(..., help="Dataset folder."),
    n: int = typer.Option(5, "-n", "--lines", min=0, help="How many records."),
) -> None:
    """The first N records (file order, masked files skipped), as pretty JSON."""
    out = console()
    for record in islice(iter_records(path), n):
        out.print_json(json.dumps(record, ensure_ascii=False, default=_plain))


@app.command()
@_one_line_errors
def verify(
    path: Path = typer.Argument(..., help="Dataset folder."),
    decode: bool = typer.Option(True, help="Also decode every payload (restricted unpickler / JSON)."),
) -> None:
    """Walk every block; check structure, counts, checksums against meta.bin. Exit 1 on problems."""
    report = verify_dataset(path, decode=decode, progress=sys.stderr.isatty())
    console().print(
        f"[green]ok[/green] {path}: {len(report.files)} files, {report.nlines:,} records, {report.nbytes:,} bytes"
        + ("" if all(check.checksum_checked for check in report.files) else " (some files have no checksum)")
    )


@app.command()
@_one_line_errors
def shuffle(
    src: Path = typer.Argument(..., help="Dataset to shuffle."),
    dst: Path = typer.Argument(..., help="Dataset to add the shuffled file to (created if missing)."),
    seed: int = typer.Option(0, help="Shuffle seed."),
    name: str | None = typer.Option(None, help="Output file name (default: drawn from the seed, *.shuffle)."),
    block_size: int = typer.Option(DEFAULT_BLOCK_SIZE, help="Output block size in bytes."),
    bucket_size: int = typer.Option(DEFAULT_SHUFFLE_BUCKET_SIZE, help="Bytes of records shuffled in memory at once."),
) -> None:
    """Shuffle SRC's records (seeded, bucketed) into one new file of DST."""
    written = shuffle_dataset(src, dst, block_size, bucket_size, progress_bar=sys.stderr.isatty(), output_name=name, seed=seed)
    console().print(f"wrote {dst / written}")


@app.command()
@_one_line_errors
def merge(
    dst: Path = typer.Argument(..., help="Dataset to merge into."),
    src: Path = typer.Argument(..., help="Dataset whose files are copied in."),
) -> None:
    """Copy SRC's files into DST (renaming clashes name_0, name_1, ...)."""
    names = merge_dataset(dst, src)
    console().print(f"merged {len(names)} files into {dst}: {', '.join(names)}")


@app.command()
@_one_line_errors
def compact(path: Path = typer.Argument(..., help="Dataset folder.")) -> None:
    """Drop meta.bin lines of deleted data files and renumber blocks (old reader states break)."""
    dropped = compact_dataset(path)
    console().print(f"dropped {len(dropped)} missing files" + (f": {', '.join(dropped)}" if dropped else ""))


@app.command()
@_one_line_errors
def mask(
    path: Path = typer.Argument(..., help="Dataset folder."),
    file: str = typer.Argument(..., help="Data file name as listed in meta.bin."),
    unmask: bool = typer.Option(False, "--unmask", help="Unmask instead."),
) -> None:
    """Mask a data file (readers skip it), or unmask it."""
    mask_dataset(path, file, mask=not unmask)
    console().print(f"{'unmasked' if unmask else 'masked'} {file} in {path}")


@app.command()
@_one_line_errors
def convert(
    src: Path = typer.Argument(..., help="Dataset to read."),
    dst: Path = typer.Argument(..., help="Dataset to write (created if missing)."),
    serializer: str = typer.Option(..., help="Target serializer: json or pickle."),
) -> None:
    """Rewrite every file of SRC into DST with another serializer (same names, order, masks)."""
    names = convert_dataset(src, dst, serializer, progress=sys.stderr.isatty())
    console().print(f"wrote {len(names)} files to {dst} as {serializer}")
