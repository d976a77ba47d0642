"""`report.html`: the build report as one self-contained page (no file beside it, no network):
the balance, the summary and drops tables, the plots as inline SVG, the quality thresholds
that applied (`off` for the unset ones) and the first rejects of each stage/reason.
"""

from __future__ import annotations

from html import escape

from corpus.pipeline.report import BuildStats, drop_rows, stage_tables, summary_rows, threshold_rows

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #b00; font-weight: bold; }
.plots svg { display: block; margin-bottom: 1em; max-width: 100%; height: auto; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; max-width: 48em; }
.off { color: #888; }
"""


def _cell(value) -> str:
    text = str(value).strip("`")
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    css = ' class="n"' if numeric else (' class="off"' if text == "off" else "")
    return f"<td{css}>{escape(text)}</td>"


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(cell) for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _examples(stats: BuildStats) -> list[str]:
    parts = []
    for key, examples in stats.reject_examples.items():
        stage, _, reason = key.partition("/")
        count = stats.rejects.get(stage, {}).get(reason, len(examples))
        parts.append(f"<h3>{escape(key)} <small>({count} records; first {len(examples)})</small></h3>")
        rows = [[e["where"], e["detail"], e["text"]] for e in examples]
        parts.append("<table><thead><tr><th>where</th><th>why</th><th>text</th></tr></thead><tbody>" + "".join(
            f"<tr><td>{escape(w)}</td><td>{escape(d)}</td><td><pre>{escape(t)}</pre></td></tr>" for w, d, t in rows)
            + "</tbody></table>")
    return parts or ["<p>No record was rejected.</p>"]


def render_html(stats: BuildStats, context: dict, svgs: list[str]) -> str:
    """The page's text; `svgs` are the plots (report.svg_bar_chart output), inlined as they are."""
    title = f"Corpus build report: {context.get('task_name')}.{context.get('dataset_name')}"
    balance = escape(stats.balance_line()) + ("" if stats.balanced else ' <span class="bad">RECORDS WERE LOST</span>')
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>", f"<h1>{escape(title)}</h1>", f"<p><strong>{balance}</strong></p>",
        _table(["", ""], summary_rows(stats, context)),
        "<h2>Drops by stage and reason</h2>",
        _table(["stage", "reason", "records", "score min / median / max", "threshold"], drop_rows(stats)),
        '<h2>Plots</h2><div class="plots">', *svgs, "</div>",
    ]
    for title, header, rows in stage_tables(stats, context):
        parts += [f"<h2>{escape(title.replace('`', ''))}</h2>", _table(header, rows)]
    thresholds = context.get("quality_thresholds")
    if thresholds:
        rows = threshold_rows(stats, thresholds)
        parts.append("<h2>Quality thresholds</h2>")
        parts.append(_table(["filter", "bound"], rows) if rows else
                     "<p>Not applied: the quality filter judged no record of this build (structured samples "
                     "are filtered only with <code>quality.apply_to_json</code>).</p>")
    parts += ["<h2>Rejected records, by stage and reason</h2>", *_examples(stats)]
    if context.get("counters"):
        parts.append("<h2>Beam counters (this run; resumed files are not re-counted)</h2>")
        parts.append(_table(["counter", "value"], [[k, v] for k, v in context["counters"].items()]))
    if context.get("skipped_files"):
        parts.append("<h2>Files and folders not read</h2>")
        parts.append(_table(["path", "reason"], [[skipped["path"], skipped["reason"]] for skipped in context["skipped_files"]]))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
