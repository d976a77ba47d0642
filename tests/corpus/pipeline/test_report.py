"""The build report people read: report.html beside report.md, thresholds as applied, plots
whose labels fit, and an arrow/ folder that pyarrow, polars and duckdb open as it is."""

from __future__ import annotations

import re

import pyarrow.dataset as pads
import pytest

from corpus.pipeline.parquet_shards import ARROW_SCHEMA_VERSION
from corpus.pipeline.report import BuildStats, render_markdown, svg_bar_chart, text_width
from corpus.pipeline.report_html import render_html

THRESHOLDS = {"min_tokens": 20, "max_short_lines": None, "max_top_ngram_chars": {2: 0.2, 3: 0.18}}


def test_report_html_is_one_self_contained_page(built):
    _, result = built
    page = (result.output / "report.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 4  # the four plots, inline
    assert not re.search(r'(src|href)="', page)  # nothing loaded from beside it or the network
    assert "read/invalid_utf8" in page and "txt/bad-bytes.txt:" in page  # rejects examples per reason
    assert "None" not in page


def test_unset_thresholds_read_off_never_none(built):
    _, result = built
    markdown = (result.output / "report.md").read_text(encoding="utf-8")
    assert "| max_short_lines | off |" in markdown
    assert "| max_top_ngram_chars | 2: 0.2, 3: 0.18, 4: 0.16 |" in markdown
    assert "None" not in markdown


def test_a_build_the_quality_filter_never_judged_lists_no_thresholds():
    structured_only = BuildStats(units_in=3, written=3, rejects={"read": {"broken_json": 1}})
    context = {"quality_thresholds": THRESHOLDS}
    for text in (render_markdown(structured_only, context), render_html(structured_only, context, [])):
        assert "Not applied" in text and "min_tokens" not in text
    judged = BuildStats(units_in=3, written=3, quality_scored=3)
    markdown = render_markdown(judged, context)
    assert "| min_tokens | 20 |" in markdown and "| max_short_lines | off |" in markdown


@pytest.mark.parametrize("label", ["exact_dedupe/exact_duplicate_of_a_long_reason_name", "质量/重复的段落太多了"])
def test_bar_chart_labels_never_reach_the_bars(label):
    svg = svg_bar_chart("Drops by stage/reason", {label: 5, "a": 1})
    bars_start = min(int(x) for x in re.findall(r'<rect x="(\d+)"', svg))
    assert text_width(label) + 4 < bars_start
    width = int(re.search(r'<svg[^>]* width="(\d+)"', svg).group(1))
    assert all(int(x) < width - 10 for x in re.findall(r'<text x="(\d+)"', svg))


def test_arrow_folder_opens_in_pyarrow_polars_and_duckdb(built):
    config, result = built
    arrow = result.output / "arrow"
    dataset = pads.dataset(arrow, format="parquet")
    assert dataset.count_rows() == result.written
    metadata = dataset.schema.metadata
    assert metadata[b"bee.dataset"] == b"test.tiny"
    assert metadata[b"bee.build_config_hash"] == config.fingerprint().encode()
    assert metadata[b"bee.schema_version"] == str(ARROW_SCHEMA_VERSION).encode()

    polars = pytest.importorskip("polars")
    assert polars.scan_parquet(arrow).select(polars.len()).collect().item() == result.written

    duckdb = pytest.importorskip("duckdb")
    ((count,),) = duckdb.sql(f"select count(*) from read_parquet('{arrow}/*.parquet')").fetchall()
    assert count == result.written
    assert not [p for p in result.output.rglob("*.done.json")]  # checkpoints live in the work dir
