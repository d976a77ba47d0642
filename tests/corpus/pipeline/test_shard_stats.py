"""`bee corpus rejects` and `bee corpus stats`: what they count agrees with the build report."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from corpus.pipeline.shard_stats import rejects_summary, shard_stats
from flows.cli import app


def test_reject_counts_are_the_reports(built):
    _, result = built
    report = json.loads((result.output / "report.json").read_text())
    summary = rejects_summary(result.output, sample=2)
    counted = {(row["stage"], row["reason"]): row["records"] for row in summary.counts.iter_rows(named=True)}
    assert counted == {(stage, reason): n for stage, reasons in report["rejects"].items() for reason, n in reasons.items()}
    assert summary.total == result.rejected
    assert "txt/bad-bytes.txt:" in " ".join(summary.examples["where"])
    per_reason = summary.examples.group_by("stage", "reason").len()
    assert per_reason["len"].max() <= 2 and per_reason.height == len(counted)


def test_rejects_of_one_reason_with_examples_from_the_command_line(built):
    _, result = built
    out = CliRunner().invoke(app, ["corpus", "rejects", str(result.output), "--reason", "invalid_utf8", "--sample", "1"],
                             env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "1 rejected records" in out.output and "invalid_utf8" in out.output and "examples" in out.output
    assert "exact_duplicate" not in out.output  # (example cells may wrap: their text is checked above)


def test_stats_cover_every_kept_record(built):
    _, result = built
    stats = shard_stats(result.output)
    assert stats.records == result.written
    assert set(stats.lengths["measure"]) == {"characters written", "characters as read"}
    assert "tokens" in set(stats.scores["quality measure"])
    out = CliRunner().invoke(app, ["corpus", "stats", str(result.output)], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and f"{result.written} kept records" in out.output


def test_a_folder_that_is_no_build_output_is_a_readable_error(tmp_path):
    out = CliRunner().invoke(app, ["corpus", "stats", str(tmp_path)])
    assert out.exit_code == 1 and "no arrow/ folder" in out.output

