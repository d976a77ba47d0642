"""The build report: statistics gathered from the written shards (so they cover resumed files
too), the `records in = written + rejected` balance, and `report.json`, `report.md` with SVG
plots — length histograms before/after, drops by filter, duplicate-cluster sizes — and a
self-contained `report.html` (report_html.py) with the same plots inline and reject examples.
"""

from __future__ import annotations

import html
import json
import math
import unicodedata
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from corpus.pipeline.decontaminate import CONTAMINATED, STAGE as DECONTAMINATION_STAGE, eval_item_of
from corpus.pipeline.language import STAGE as LANGUAGE_STAGE, WRONG_LANGUAGE, main_language
from corpus.pipeline.parquet_shards import REJECTS_DIR, REJECTS_SUFFIX, join, list_shards, read_rejects
from corpus.pipeline.pii import CONTAINS_PII, STAGE as PII_STAGE, parse_counts
from schemas import Record

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS_DIR = "plots"
EXAMPLES_PER_REASON = 3  # rejects shown per stage/reason in report.html
EXAMPLE_CHARS = 300  # characters of a rejected text shown


def length_bucket(chars: int) -> str:
    """Power-of-two length bucket label: `0`, `1-1`, `2-3`, `4-7`, ..."""
    if chars <= 0:
        return "0"
    low = 1 << int(math.log2(chars))
    return f"{low}-{2 * low - 1}"


def _bucket_order(label: str) -> int:
    return int(label.split("-")[0])


@dataclass
class BuildStats:
    """Everything the report says, computed from the output shards and checkpoint markers."""

    units_in: int = 0
    extra_pieces: int = 0
    written: int = 0
    rejected: int = 0
    written_chars: int = 0
    rejects: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> reason -> count
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # reason -> min/median/max/threshold
    length_before: dict[str, int] = field(default_factory=dict)
    length_after: dict[str, int] = field(default_factory=dict)
    cluster_sizes: dict[str, int] = field(default_factory=dict)  # size -> clusters
    quality_scored: int = 0  # records the quality filter measured (kept or dropped by it)
    reject_examples: dict[str, list[dict]] = field(default_factory=dict)  # "stage/reason" -> first rejects
    languages: dict[str, dict[str, int]] = field(default_factory=dict)  # language -> {written, chars, rejected}
    pii: dict[str, dict[str, int]] = field(default_factory=dict)  # type -> {redacted, in_rejected}
    contamination: dict[str, dict[str, int]] = field(default_factory=dict)  # eval set -> {records, items}

    @property
    def quality_applied(self) -> bool:
        """Whether the quality filter judged any record (it skips structured samples unless
        `quality.apply_to_json`): its thresholds mean nothing for a build where it did not."""
        return self.quality_scored > 0 or "quality" in self.rejects

    @property
    def balanced(self) -> bool:
        return self.units_in + self.extra_pieces == self.written + self.rejected

    def balance_line(self) -> str:
        sign = "==" if self.balanced else "!="
        return (f"records in {self.units_in} + split pieces {self.extra_pieces} {sign} "
                f"written {self.written} + rejected {self.rejected}")


class StatsCollector:
    """`BuildStats` in one pass over the output: `add_record` for each written record (packing
    reads them anyway and calls it), then `finish` reads the `rejects/` shards."""

    def __init__(self, units_in: int):
        self.stats = BuildStats(units_in=units_in)
        self.before: Counter = Counter()
        self.after: Counter = Counter()
        self.clusters: Counter = Counter()
        self.languages: dict[str, Counter] = defaultdict(Counter)
        self.pii: dict[str, Counter] = defaultdict(Counter)
        self.contaminated: dict[str, Counter] = defaultdict(Counter)  # eval set -> item -> records
        self._last_document: tuple[str, int] | None = None

    def add_record(self, record: Record) -> None:
        stats = self.stats
        stats.written += 1
        stats.written_chars += len(record.text)
        stats.extra_pieces += record.piece > 0
        if record.piece == 0:
            self.before[length_bucket(record.raw_chars)] += 1
        self.after[length_bucket(len(record.text))] += 1
        if record.cluster_size > 1:
            self.clusters[str(record.cluster_size)] += 1
        if record.quality:
            stats.quality_scored += 1
        if record.language is not None:
            self.languages[record.language]["written"] += 1
            self.languages[record.language]["chars"] += len(record.text)
        document = (record.source_path, record.source_line)
        if document != self._last_document:  # the pieces of a split document carry its PII counts
            self._last_document = document
            for kind, n in record.pii.items():
                self.pii[kind]["redacted"] += n

    def finish(self, staging: str) -> BuildStats:
        stats = self.stats
        rejects: dict[str, Counter] = defaultdict(Counter)
        scores: dict[str, list[float]] = defaultdict(list)
        thresholds: dict[str, float] = {}
        for _, url in list_shards(join(staging, REJECTS_DIR), REJECTS_SUFFIX):
            for reject in read_rejects(url):
                stats.rejected += 1
                stats.extra_pieces += reject.piece > 0
                if reject.piece == 0 and reject.raw_chars is not None:
                    self.before[length_bucket(reject.raw_chars)] += 1
                rejects[reject.stage][reject.reason] += 1
                if reject.stage == "quality":
                    stats.quality_scored += 1
                self._stage_reject(reject)
                examples = stats.reject_examples.setdefault(f"{reject.stage}/{reject.reason}", [])
                if len(examples) < EXAMPLES_PER_REASON:
                    examples.append({"where": f"{reject.source_path}:{reject.source_line}", "detail": reject.detail,
                                     "text": reject.text[:EXAMPLE_CHARS]})
                if reject.score is not None:
                    scores[reject.reason].append(reject.score)
                    if reject.threshold is not None:
                        thresholds[reject.reason] = reject.threshold
        stats.rejects = {stage: dict(sorted(reasons.items())) for stage, reasons in sorted(rejects.items())}
        for reason, values in sorted(scores.items()):
            values.sort()
            stats.scores[reason] = {"min": values[0], "median": values[len(values) // 2], "max": values[-1]}
            if reason in thresholds:
                stats.scores[reason]["threshold"] = thresholds[reason]
        stats.length_before = dict(sorted(self.before.items(), key=lambda kv: _bucket_order(kv[0])))
        stats.length_after = dict(sorted(self.after.items(), key=lambda kv: _bucket_order(kv[0])))
        stats.cluster_sizes = dict(sorted(self.clusters.items(), key=lambda kv: int(kv[0])))
        stats.languages = {lang: dict(sorted(c.items())) for lang, c in
                           sorted(self.languages.items(), key=lambda kv: (-kv[1]["written"] - kv[1]["rejected"], kv[0]))}
        stats.pii = {kind: dict(sorted(c.items())) for kind, c in sorted(self.pii.items())}
        stats.contamination = {name: {"records": sum(items.values()), "items": len(items)}
                               for name, items in sorted(self.contaminated.items())}
        return stats

    def _stage_reject(self, reject) -> None:
        """What the language, PII and decontamination rejects add to their report sections."""
        if reject.stage == LANGUAGE_STAGE and reject.reason == WRONG_LANGUAGE:
            self.languages[main_language(reject.detail)]["rejected"] += 1
        elif reject.stage == PII_STAGE and reject.reason == CONTAINS_PII:
            for kind, n in parse_counts(reject.detail).items():
                self.pii[kind]["in_rejected"] += n
        elif reject.stage == DECONTAMINATION_STAGE and reject.reason == CONTAMINATED:
            eval_set, item = eval_item_of(reject.detail)
            self.contaminated[eval_set][item] += 1


def text_width(text: str, font_size: int = 12) -> int:
    """Width in pixels a sans-serif line of `text` needs at most: wide (CJK) characters count a
    full em, others 0.62 em (wider than the average Latin glyph, so labels never clip)."""
    ems = sum(1.0 if unicodedata.east_asian_width(c) in "WF" else 0.62 for c in text)
    return int(ems * font_size) + 1


def svg_bar_chart(title: str, counts: dict[str, int], width: int = 640, bar_height: int = 18) -> str:
    """A horizontal bar chart as standalone SVG text (no plotting library needed). The label
    column is as wide as the longest label, and the chart widens so bars keep their room."""
    pad = 6
    label_width = 12 + max((text_width(str(label)) for label in counts), default=0)
    value_width = 12 + max((text_width(str(value)) for value in counts.values()), default=0)
    width = max(width, label_width + value_width + 200, text_width(title, 13) + 8)
    height = 30 + max(1, len(counts)) * (bar_height + pad)
    peak = max(counts.values(), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<text x="4" y="16" font-weight="bold">{html.escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(counts.items()):
        y = 26 + index * (bar_height + pad)
        bar = int((width - label_width - value_width) * value / peak)
        parts.append(f'<text x="4" y="{y + 13}">{html.escape(str(label))}</text>')
        parts.append(f'<rect x="{label_width}" y="{y}" width="{max(bar, 1)}" height="{bar_height}" fill="#4878a8"/>')
        parts.append(f'<text x="{label_width + bar + 4}" y="{y + 13}">{value}</text>')
    if not counts:
        parts.append('<text x="4" y="40">(none)</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def threshold_text(value) -> str:
    """A quality bound as a reader wants it: `off` when unset, `n: bound` pairs for n-gram maps."""
    if value is None:
        return "off"
    if isinstance(value, dict):
        return ", ".join(f"{n}: {bound:g}" for n, bound in value.items()) if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def threshold_rows(stats: BuildStats, thresholds: dict) -> list[list[str]]:
    """(filter, bound) rows of the quality filter; none when it judged no record in this build."""
    if not stats.quality_applied:
        return []
    return [[name, threshold_text(value)] for name, value in thresholds.items()]


def plot_charts(stats: BuildStats) -> dict[str, tuple[str, dict]]:
    """file name -> (title, counts) of each plot."""
    drops = {f"{stage}/{reason}": n for stage, reasons in stats.rejects.items() for reason, n in reasons.items()}
    return {
        "length_before.svg": ("Sample length before (characters, as read)", stats.length_before),
        "length_after.svg": ("Sample length after (characters, written)", stats.length_after),
        "drops.svg": ("Drops by stage/reason", dict(sorted(drops.items(), key=lambda kv: -kv[1]))),
        "cluster_sizes.svg": ("Near-duplicate cluster sizes (clusters)", stats.cluster_sizes),
    }


def summary_rows(stats: BuildStats, context: dict) -> list[list]:
    return [
        ["written records", stats.written], ["written characters", stats.written_chars],
        ["rejected", stats.rejected], ["dataset nlines / nbytes", f"{context.get('nlines')} / {context.get('nbytes')}"],
        ["build-config hash", f"`{context.get('config_hash', '')[:16]}`"], ["inputs", ", ".join(context.get("inputs", []))],
    ]


def drop_rows(stats: BuildStats) -> list[list]:
    """(stage, reason, records, score min / median / max, threshold) per drop reason."""
    return [
        [stage, reason, n,
         " / ".join(f"{stats.scores[reason][k]:.4g}" for k in ("min", "median", "max")) if reason in stats.scores else "",
         f"{stats.scores[reason]['threshold']:.4g}" if "threshold" in stats.scores.get(reason, {}) else ""]
        for stage, reasons in stats.rejects.items() for reason, n in reasons.items()
    ]


def stage_tables(stats: BuildStats, context: dict) -> list[tuple[str, list[str], list[list]]]:
    """(title, header, rows) of the language, PII and decontamination sections, for the
    Markdown and HTML reports; a section only when its stage ran or found something."""
    tables = []
    if stats.languages:
        tables.append(("Languages (cld2; rejected: `wrong_language`, by main language)",
                       ["language", "written records", "written characters", "rejected"],
                       [[lang, c.get("written", 0), c.get("chars", 0), c.get("rejected", 0)] for lang, c in stats.languages.items()]))
    if stats.pii:
        tables.append(("PII found (by type)", ["type", "redacted in written records", "in rejected documents"],
                       [[kind, c.get("redacted", 0), c.get("in_rejected", 0)] for kind, c in stats.pii.items()]))
    if context.get("eval_sets"):
        tables.append(("Decontamination (records sharing an n-gram with an evaluation item)",
                       ["evaluation set", "contaminated records", "evaluation items hit"],
                       [[name, stats.contamination.get(name, {}).get("records", 0),
                         stats.contamination.get(name, {}).get("items", 0)] for name in context["eval_sets"]]))
    return tables


def render_markdown(stats: BuildStats, context: dict, plots: bool = True) -> str:
    """report.md's text; `plots=False` leaves out the plot links (for a Prefect artifact, which
    cannot show files beside the report)."""
    lines = [f"# Corpus build report: {context.get('task_name')}.{context.get('dataset_name')}", ""]
    lines += [f"**{stats.balance_line()}**" + ("" if stats.balanced else "  — RECORDS WERE LOST"), ""]
    lines += _table(["", ""], summary_rows(stats, context))
    lines += ["", "## Drops by stage and reason", ""]
    lines += _table(["stage", "reason", "records", "score min / median / max", "threshold"], drop_rows(stats))
    if plots:
        lines += ["", "## Plots", ""] + [f"![{title}]({PLOTS_DIR}/{name})" for name, (title, _) in plot_charts(stats).items()]
    for title, header, rows in stage_tables(stats, context):
        lines += ["", f"## {title}", ""] + _table(header, rows)
    thresholds = context.get("quality_thresholds")
    if thresholds:
        lines += ["", "## Quality thresholds", ""]
        rows = threshold_rows(stats, thresholds)
        lines += _table(["filter", "bound"], rows) if rows else [
            "Not applied: the quality filter judged no record of this build (structured samples are "
            "filtered only with `quality.apply_to_json`)."]
    if context.get("counters"):
        lines += ["", "## Beam counters (this run; resumed files are not re-counted)", ""]
        lines += _table(["counter", "value"], [[k, v] for k, v in context["counters"].items()])
    if context.get("skipped_files"):
        lines += ["", "## Files and folders not read", ""]
        lines += _table(["path", "reason"], [[f"`{s['path']}`", s["reason"]] for s in context["skipped_files"]])
    return "\n".join(lines) + "\n"


def write_report(folder: Path, stats: BuildStats, context: dict) -> Path:
    """Write `report.json`, `report.md`, `report.html` and `plots/*.svg` into `folder`; returns
    the Markdown path.

    `context` holds what the shards cannot tell: config hash, inputs, Beam counters, timings.
    """
    from corpus.pipeline.report_html import render_html

    plots = folder / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    charts = {name: svg_bar_chart(title, counts) for name, (title, counts) in plot_charts(stats).items()}
    for name, svg in charts.items():
        (plots / name).write_text(svg, encoding="utf-8")
    (folder / REPORT_JSON).write_text(
        json.dumps({"balanced": stats.balanced, **asdict(stats), **context}, indent=2, ensure_ascii=False, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    (folder / REPORT_HTML).write_text(render_html(stats, context, list(charts.values())), encoding="utf-8")
    path = folder / REPORT_MD
    path.write_text(render_markdown(stats, context), encoding="utf-8")
    return path


def load_report(folder: Path) -> tuple[BuildStats, dict]:
    """(stats, context) back from a build's `report.json`."""
    data = json.loads((folder / REPORT_JSON).read_text(encoding="utf-8"))
    names = {f.name for f in fields(BuildStats)}
    stats = BuildStats(**{key: value for key, value in data.items() if key in names})
    context = {key: value for key, value in data.items() if key not in names and key != "balanced"}
    return stats, context
