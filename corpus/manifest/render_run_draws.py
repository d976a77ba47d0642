"""Renderers of `RunDraws`: what a run draws from each dataset, for one manifest (`show --run`)
or before and after a change (`diff --run`), as a rich table, Markdown or JSON data."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from corpus.manifest.formatting import UNKNOWN, percent
from corpus.manifest.run_draws import DatasetDraw, RunDraws


def _amount(value: float | None) -> str:
    if value is None:
        return UNKNOWN
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.2f}{suffix}"
    return f"{value:.0f}"


def _epochs(value: float | None) -> str:
    return UNKNOWN if value is None else f"{value:.2f}"


def flag_text(draw: DatasetDraw | None, max_epochs: float) -> str:
    if draw is None or draw.flag is None:
        return ""
    if draw.flag == "repeated":
        return f"repeated {draw.epochs:.1f}× (> {max_epochs:g})"
    return f"seen {draw.epochs:.2f}× (< 1: part never seen)"


def heading(draws: RunDraws, label: str) -> str:
    shape = draws.shape
    return (f"{label}: {shape.max_steps:,} steps × {shape.rows_per_step:,} rows × {shape.max_length:,} tokens "
            f"× fill {shape.fill:.2f} ({shape.fill_source}) = {_amount(shape.tokens)} tokens")


def _show_rows(draws: RunDraws) -> list[tuple[str, ...]]:
    return [(draw.identity, percent(draw.share), _amount(draw.samples), _amount(draw.tokens), _epochs(draw.epochs),
             flag_text(draw, draws.max_epochs)) for draw in draws.datasets.values()]


_SHOW_COLUMNS = ("dataset", "share", "samples", "tokens", "epochs", "flag")
_DIFF_COLUMNS = ("dataset", "epochs", "tokens", "flag")


def _diff_rows(old: RunDraws, new: RunDraws) -> list[tuple[str, ...]]:
    rows = []
    for identity in dict.fromkeys([*old.datasets, *new.datasets]):
        before, after = old.get(identity), new.get(identity)
        epochs = f"{_epochs(before.epochs) if before else '—'} → {_epochs(after.epochs) if after else '—'}"
        tokens = f"{_amount(before.tokens) if before else '—'} → {_amount(after.tokens) if after else '—'}"
        rows.append((identity, epochs, tokens, flag_text(after, new.max_epochs)))
    return rows


def _notes(draws: RunDraws) -> list[str]:
    notes = []
    if draws.why_unknown:
        notes.append(f"draws unknown: {draws.why_unknown}")
    flagged = draws.flagged
    if flagged:
        notes.append(f"{len(flagged)} dataset(s) flagged: " + ", ".join(
            f"{draw.identity} ({flag_text(draw, draws.max_epochs)})" for draw in flagged))
    return notes


def _terminal(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]], notes: list[str], console: Console) -> None:
    console.print(title, highlight=False, soft_wrap=True)
    table = Table()
    for column in columns:
        table.add_column(column, overflow="fold", justify="left" if column in ("dataset", "flag") else "right")
    for row in rows:
        table.add_row(*row, style="bold yellow" if row[-1] else None)
    console.print(table)
    for note in notes:
        console.print(f"[bold yellow]![/bold yellow] {note}", highlight=False)


def _markdown(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]], notes: list[str]) -> str:
    out = [f"#### {title}", "", "| " + " | ".join(columns) + " |",
           "|" + "|".join("---" if c in ("dataset", "flag") else "---:" for c in columns) + "|"]
    for row in rows:
        cells = [f"`{row[0]}`", *row[1:-1], f"**{row[-1]}**" if row[-1] else ""]
        out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    out.append("")
    out.extend(f"> ⚠️ {note}" for note in notes)
    return "\n".join(out) + "\n"


def render_show_terminal(draws: RunDraws, console: Console, label: str) -> None:
    _terminal(heading(draws, label), _SHOW_COLUMNS, _show_rows(draws), _notes(draws), console)


def render_show_markdown(draws: RunDraws, label: str) -> str:
    return _markdown(heading(draws, label), _SHOW_COLUMNS, _show_rows(draws), _notes(draws))


def render_diff_terminal(old: RunDraws, new: RunDraws, console: Console, label: str) -> None:
    _terminal(heading(new, label), _DIFF_COLUMNS, _diff_rows(old, new), _notes(new), console)


def render_diff_markdown(old: RunDraws, new: RunDraws, label: str) -> str:
    return _markdown(heading(new, label), _DIFF_COLUMNS, _diff_rows(old, new), _notes(new))


def draws_to_json_data(draws: RunDraws) -> dict[str, Any]:
    shape = draws.shape
    return {
        "max_steps": shape.max_steps, "rows_per_step": shape.rows_per_step, "max_length": shape.max_length,
        "weight_by": shape.weight_by, "fill": shape.fill, "fill_source": shape.fill_source, "tokens": shape.tokens,
        "max_epochs": draws.max_epochs, "why_unknown": draws.why_unknown,
        "datasets": {identity: {"share": d.share, "samples": d.samples, "tokens": d.tokens, "epochs": d.epochs,
                                "flag": d.flag} for identity, d in draws.datasets.items()},
    }
