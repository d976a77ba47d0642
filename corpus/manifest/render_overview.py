"""Renderers of a `ManifestOverview`: the `show` table (terminal, Markdown, JSON) and the plain,
line-per-setting text git diffs through the textconv driver."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from corpus.manifest.formatting import count, datasets, percent, percent_number, short_fingerprint, value_text
from corpus.manifest.overview import DatasetRow, ManifestOverview

_COLUMNS = ("dataset", "weight", "share", "token share", "lines", "bytes", "tokens", "content", "vocab")


def _cells(row: DatasetRow) -> tuple[str, ...]:
    lines = count(row.lines.nlines) + (" (meta.bin)" if row.lines.source == "meta.bin" else "")
    return (
        row.identity, f"{row.weight:g}", percent(row.share), percent(row.token_share), lines,
        count(row.nbytes), count(row.ntokens),
        short_fingerprint(row.content_fingerprint), short_fingerprint(row.vocab_fingerprint),
    )


def _footer(view: ManifestOverview) -> list[str]:
    lines = [
        f"{datasets(len(view.rows))}; total lines {count(view.total('nlines'))}, "
        f"bytes {count(view.total('nbytes'))}, tokens {count(view.total('ntokens'))}"
    ]
    if view.shares_unknown:
        lines.append(f"sampling shares unknown: {view.shares_unknown}")
    return lines


def render_overview_terminal(view: ManifestOverview, console: Console, title: str) -> None:
    """Print the datasets table with a totals line."""
    table = Table(title=title)
    for column in _COLUMNS:
        table.add_column(column, overflow="fold", justify="left" if column == "dataset" else "right")
    for row in view.rows:
        table.add_row(*_cells(row))
    console.print(table)
    for line in _footer(view):
        console.print(line, highlight=False)


def render_overview_markdown(view: ManifestOverview, title: str) -> str:
    out = [f"### Mixture manifest `{title}`", "", "| " + " | ".join(_COLUMNS) + " |"]
    out.append("|" + "|".join("---" if c == "dataset" else "---:" for c in _COLUMNS) + "|")
    for row in view.rows:
        cells = list(_cells(row))
        cells[0] = f"`{cells[0]}`"
        out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    out.append("")
    out.extend(_footer(view))
    return "\n".join(out) + "\n"


def overview_to_json_data(view: ManifestOverview) -> dict[str, Any]:
    """Plain data: shares in percent, counts, fingerprints in full, settings."""
    return {
        "shares_unknown": view.shares_unknown,
        "token_shares_unknown": view.token_shares_unknown,
        "totals": {name: view.total(name) for name in ("nlines", "nbytes", "ntokens")},
        "datasets": [
            {
                "identity": row.identity,
                "share_pct": percent_number(row.share),
                "token_share_pct": percent_number(row.token_share),
                "nlines": row.lines.nlines,
                "nlines_source": row.lines.source,
                "nbytes": row.nbytes,
                "ntokens": row.ntokens,
                "settings": row.fields,
            }
            for row in view.rows
        ],
    }


def render_overview_json(view: ManifestOverview) -> str:
    return json.dumps(overview_to_json_data(view), ensure_ascii=False, indent=2) + "\n"


def render_textconv(view: ManifestOverview) -> str:
    """A stable text form, one setting a line, so `git diff` shows each change on its own line.

    Values are written in full (no truncation: this is what reviewers diff); a list of
    transforms is written one mapping a line.
    """
    out = ["# mixture manifest; sampling share = weight × nlines, normalised"]
    out.extend(f"# {line}" for line in _footer(view))
    for row in view.rows:
        out += ["", f"[{row.identity}]"]
        out.append(f"  {'share':<22} {percent(row.share)}")
        if row.token_share is not None:
            out.append(f"  {'token share':<22} {percent(row.token_share)}")
        out.append(f"  {'nlines':<22} {count(row.lines.nlines)}")
        for name, value in row.fields.items():
            if name == "transforms" and isinstance(value, list) and value:
                out.append(f"  {'transforms':<22} {len(value)} mapping(s)")
                out.extend(f"    - {value_text(mapping, limit=10**9)}" for mapping in value)
            else:
                out.append(f"  {name:<22} {value_text(value, limit=10**9)}")
        for name in ("nbytes", "ntokens"):
            if getattr(row, name) is not None:
                out.append(f"  {name:<22} {count(getattr(row, name))}")
    return "\n".join(out) + "\n"
