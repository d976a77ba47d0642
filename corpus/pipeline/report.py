"""The build report: statistics gathered from the written shards (so they cover resumed files
too), the `records in = written + rejected` balance, and `report.json` plus `report.md` with
SVG plots — length histograms before/after, drops by filter, duplicate-cluster sizes.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from corpus.pipeline.shards import REJECTS_SUFFIX, join, list_shards, read_rejects
from corpus.pipeline.finish import REJECTS_DIR
from schemas import Record

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PLOTS_DIR = "plots"


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
        return stats


def svg_bar_chart(title: str, counts: dict[str, int], width: int = 640, bar_height: int = 18) -> str:
    """A horizontal bar chart as standalone SVG text (no plotting library needed)."""
    label_width, pad = 170, 6
    height = 30 + max(1, len(counts)) * (bar_height + pad)
    peak = max(counts.values(), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<text x="4" y="16" font-weight="bold">{html.escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(counts.items()):
        y = 26 + index * (bar_height + pad)
        bar = int((width - label_width - 70) * value / peak)
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


def write_report(folder: Path, stats: BuildStats, context: dict) -> Path:
    """Write `report.json`, `report.md` and `plots/*.svg` into `folder`; returns the Markdown path.

    `context` holds what the shards cannot tell: config hash, inputs, Beam counters, timings.
    """
    plots = folder / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    drops = {f"{stage}/{reason}": n for stage, reasons in stats.rejects.items() for reason, n in reasons.items()}
    charts = {
        "length_before.svg": ("Sample length before (characters, as read)", stats.length_before),
        "length_after.svg": ("Sample length after (characters, written)", stats.length_after),
        "drops.svg": ("Drops by stage/reason", dict(sorted(drops.items(), key=lambda kv: -kv[1]))),
        "cluster_sizes.svg": ("Near-duplicate cluster sizes (clusters)", stats.cluster_sizes),
    }
    for name, (title, counts) in charts.items():
        (plots / name).write_text(svg_bar_chart(title, counts), encoding="utf-8")
    (folder / REPORT_JSON).write_text(
        json.dumps({"balanced": stats.balanced, **asdict(stats), **context}, indent=2, ensure_ascii=False, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    lines = [f"# Corpus build report: {context.get('task_name')}.{context.get('dataset_name')}", ""]
    lines += [f"**{stats.balance_line()}**" + ("" if stats.balanced else "  — RECORDS WERE LOST"), ""]
    lines += _table(["", ""], [
        ["written records", stats.written], ["written characters", stats.written_chars],
        ["rejected", stats.rejected], ["dataset nlines / nbytes", f"{context.get('nlines')} / {context.get('nbytes')}"],
        ["build-config hash", f"`{context.get('config_hash', '')[:16]}`"], ["inputs", ", ".join(context.get("inputs", []))],
    ])
    lines += ["", "## Drops by stage and reason", ""]
    lines += _table(["stage", "reason", "records", "score min / median / max", "threshold"], [
        [stage, reason, n,
         " / ".join(f"{stats.scores[reason][k]:.4g}" for k in ("min", "median", "max")) if reason in stats.scores else "",
         f"{stats.scores[reason]['threshold']:.4g}" if "threshold" in stats.scores.get(reason, {}) else ""]
        for stage, reasons in stats.rejects.items() for reason, n in reasons.items()
    ])
    lines += ["", "## Plots", ""] + [f"![{title}]({PLOTS_DIR}/{name})" for name, (title, _) in charts.items()]
    if context.get("quality_thresholds"):
        lines += ["", "## Quality thresholds", ""]
        lines += _table(["filter", "bound"], [[k, v] for k, v in context["quality_thresholds"].items()])
    if context.get("counters"):
        lines += ["", "## Beam counters (this run; resumed files are not re-counted)", ""]
        lines += _table(["counter", "value"], [[k, v] for k, v in context["counters"].items()])
    if context.get("skipped_files"):
        lines += ["", "## Files and folders not read", ""]
        lines += _table(["path", "reason"], [[f"`{s['path']}`", s["reason"]] for s in context["skipped_files"]])
    path = folder / REPORT_MD
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
