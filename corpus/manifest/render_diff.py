"""Renderers of a `ManifestDiff`: a rich terminal table, Markdown for a review comment, JSON.

Each takes the typed diff and only formats it; nothing here computes a share or compares a field.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from corpus.manifest.diff import DatasetDiff, ManifestDiff, StatDelta
from corpus.manifest.formatting import ABSENT, count, count_change, datasets, field_change_text, percent, percent_number, points

_STATUS_MARK = {"added": "+ added", "removed": "- removed", "changed": "~ changed", "unchanged": "unchanged"}
_STATUS_STYLE = {"added": "green", "removed": "red", "changed": "yellow", "unchanged": "dim"}


def summary_line(diff: ManifestDiff) -> str:
    """One line: counts by status, order change, and the largest share movements."""
    unchanged = len(diff.with_status("unchanged"))
    if diff.is_empty:
        return f"no change: the same mixture of {datasets(unchanged)}"
    parts = [f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed, {unchanged} unchanged"]
    if diff.reordered:
        parts.append("order changed (same mixture, different random draws)")
    movements = diff.largest_share_movements()
    if movements:
        parts.append("largest share movements: " + ", ".join(f"{d.identity} {points(d.share_delta)}" for d in movements))
    elif not diff.shares_known:
        parts.append("shares unknown")
    return "; ".join(parts)


def notes(diff: ManifestDiff) -> list[str]:
    """What a reviewer must not miss, and where numbers came from."""
    lines = []
    for dataset in diff.datasets:
        if dataset.same_weights_different_data:
            which = " and ".join(c.field.split(".")[1] for c in dataset.changes if c.field.startswith("fingerprints."))
            lines.append(f"same weights, different data: {dataset.identity} ({which} fingerprint changed, weight unchanged)")
    for side, reason in (("old", diff.old_shares_unknown), ("new", diff.new_shares_unknown)):
        if reason:
            lines.append(f"sampling shares of the {side} manifest unknown: {reason}")
    from_meta = [d.identity for d in diff.datasets if "meta.bin" in (d.nlines_source_old, d.nlines_source_new)]
    if from_meta:
        lines.append(f"nlines read from meta.bin (not recorded in the manifest): {', '.join(from_meta)}")
    return lines


def shown_datasets(diff: ManifestDiff) -> list[DatasetDiff]:
    """Datasets worth a row: every one that changed, and unchanged ones whose share moved."""
    return [
        d for d in diff.datasets
        if d.status != "unchanged" or (d.share_delta is not None and abs(d.share_delta) >= 5e-5)
    ]


def _share_cell(dataset: DatasetDiff, tokens: bool = False) -> str:
    old = dataset.token_share_old if tokens else dataset.share_old
    new = dataset.token_share_new if tokens else dataset.share_new
    before = ABSENT if dataset.status == "added" else percent(old)
    after = ABSENT if dataset.status == "removed" else percent(new)
    return before if before == after else f"{before} → {after}"


def _stat_cell(stat: StatDelta | None, status: str) -> str:
    if stat is None:
        return ABSENT
    if status == "added":
        return count(stat.new)
    if status == "removed":
        return count(stat.old)
    return count_change(stat.old, stat.new)


def _columns(rows: list[DatasetDiff]) -> list[str]:
    """Columns with something to say: token shares and byte/token counts only when present."""
    columns = ["dataset", "status", "share", "Δ share"]
    if any(d.token_share_old is not None or d.token_share_new is not None for d in rows):
        columns += ["token share", "Δ token share"]
    columns.append("lines")
    for name, title in (("nbytes", "bytes"), ("ntokens", "tokens")):
        if any(not (d.stat(name).old is None and d.stat(name).new is None) for d in rows):
            columns.append(title)
    columns.append("changes")
    return columns


def _cells(dataset: DatasetDiff, columns: list[str], limit: int) -> dict[str, str]:
    cells = {
        "dataset": dataset.identity,
        "status": _STATUS_MARK[dataset.status],
        "share": _share_cell(dataset),
        "Δ share": points(dataset.share_delta),
        "token share": _share_cell(dataset, tokens=True),
        "Δ token share": points(dataset.token_share_delta),
        "lines": _stat_cell(dataset.stat("nlines"), dataset.status),
        "bytes": _stat_cell(dataset.stat("nbytes"), dataset.status),
        "tokens": _stat_cell(dataset.stat("ntokens"), dataset.status),
        "changes": "; ".join(field_change_text(c.field, c.old, c.new, limit) for c in dataset.changes),
    }
    return {column: cells[column] for column in columns}


def render_terminal(diff: ManifestDiff, console: Console) -> None:
    """Print the diff as a rich table with the summary line and notes."""
    console.print(f"[bold]{diff.old_label}[/bold] → [bold]{diff.new_label}[/bold]", highlight=False)
    rows = shown_datasets(diff)
    if rows:
        columns = _columns(rows)
        table = Table(show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold", no_wrap=column in ("status", "Δ share"))
        for dataset in rows:
            cells = _cells(dataset, columns, limit=80)
            table.add_row(*cells.values(), style=_STATUS_STYLE[dataset.status])
        console.print(table)
    for note in notes(diff):
        console.print(f"[bold yellow]![/bold yellow] {note}", highlight=False)
    console.print(summary_line(diff), highlight=False)


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(diff: ManifestDiff) -> str:
    """The diff as a Markdown review comment: heading, summary, table, notes."""
    out = [f"### Mixture manifest: `{diff.old_label}` → `{diff.new_label}`", "", f"**{summary_line(diff)}**", ""]
    rows = shown_datasets(diff)
    if rows:
        columns = _columns(rows)
        out.append("| " + " | ".join(columns) + " |")
        out.append("|" + "|".join("---" if c in ("dataset", "status", "changes") else "---:" for c in columns) + "|")
        for dataset in rows:
            cells = _cells(dataset, columns, limit=160)
            cells["dataset"] = f"`{dataset.identity}`"
            if dataset.share_delta is not None and abs(dataset.share_delta) >= 0.01:
                cells["Δ share"] = f"**{cells['Δ share']}**"  # a point or more: bold, reviewers skim
            out.append("| " + " | ".join(_markdown_cell(cells[c]) for c in columns) + " |")
        out.append("")
    for note in notes(diff):
        out.append(f"> ⚠️ {note}" if note.startswith("same weights") else f"> {note}")
        out.append("")
    unchanged = len(diff.datasets) - len(rows)
    if unchanged:
        out.append(f"{datasets(unchanged)} unchanged, share unmoved.")
        out.append("")
    return "\n".join(out)


def _stat_json(stat: StatDelta, source_old: str | None, source_new: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"old": stat.old, "new": stat.new, "delta": stat.delta}
    if stat.field == "nlines":
        data.update(source_old=source_old, source_new=source_new)
    return data


def diff_to_json_data(diff: ManifestDiff) -> dict[str, Any]:
    """The whole diff as plain data: shares in percent, changes in percentage points."""
    return {
        "old": diff.old_label,
        "new": diff.new_label,
        "summary": {
            "added": len(diff.added),
            "removed": len(diff.removed),
            "changed": len(diff.changed),
            "unchanged": len(diff.with_status("unchanged")),
            "reordered": diff.reordered,
            "is_empty": diff.is_empty,
            "text": summary_line(diff),
        },
        "shares_unknown": {"old": diff.old_shares_unknown, "new": diff.new_shares_unknown},
        "token_shares_unknown": {"old": diff.old_token_shares_unknown, "new": diff.new_token_shares_unknown},
        "totals": {name: _stat_json(stat, None, None) for name, stat in diff.totals.items()},
        "notes": notes(diff),
        "datasets": [
            {
                "identity": d.identity,
                "status": d.status,
                "share_old_pct": percent_number(d.share_old),
                "share_new_pct": percent_number(d.share_new),
                "share_delta_pp": percent_number(d.share_delta),
                "token_share_old_pct": percent_number(d.token_share_old),
                "token_share_new_pct": percent_number(d.token_share_new),
                "token_share_delta_pp": percent_number(d.token_share_delta),
                **{s.field: _stat_json(s, d.nlines_source_old, d.nlines_source_new) for s in d.stats},
                "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in d.changes],
                "same_weights_different_data": d.same_weights_different_data,
            }
            for d in diff.datasets
        ],
    }


def render_json(diff: ManifestDiff) -> str:
    """`diff_to_json_data` as indented JSON text."""
    return json.dumps(diff_to_json_data(diff), ensure_ascii=False, indent=2) + "\n"
