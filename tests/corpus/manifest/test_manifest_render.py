"""Renderers: the terminal table, the Markdown review comment, JSON, and the textconv text."""

import json

from rich.console import Console

from corpus.manifest.diff import diff_manifests
from corpus.manifest.lines import line_counts
from corpus.manifest.overview import overview
from corpus.manifest.render_diff import render_json, render_markdown, render_terminal, summary_line
from corpus.manifest.render_overview import (
    render_overview_json,
    render_overview_markdown,
    render_overview_terminal,
    render_textconv,
)
from schemas import MixtureManifest
from manifest_fixtures import cpm_bee_manifest, entry

OLD = MixtureManifest.model_validate([
    entry("lm", "wiki", nlines=1000, ntokens=50_000, fingerprints={"content": "a" * 64}),
    entry("lm", "news", weight=2.0, nlines=500, ntokens=30_000),
    entry("qa", "old", nlines=100, ntokens=1000),
])
NEW = MixtureManifest.model_validate([
    entry("lm", "wiki", nlines=1200, ntokens=60_000, fingerprints={"content": "b" * 64}),
    entry("lm", "news", weight=3.0, nlines=500, ntokens=30_000, transforms=[{"text": "$te|xt"}]),
    entry("lm", "code", nlines=300, ntokens=9000),
])


def _diff(old=OLD, new=NEW):
    return diff_manifests(old, new, line_counts(old, None), line_counts(new, None), "a.json", "b.json")


def test_summary_line_counts_statuses_and_names_largest_movements():
    assert summary_line(_diff()) == (
        "1 added, 1 removed, 2 changed, 0 unchanged; "
        "largest share movements: lm.code +10.00 pp, lm.wiki -7.62 pp, qa.old -4.76 pp"
    )
    assert summary_line(_diff(OLD, OLD)) == "no change: the same mixture of 3 datasets"


def test_markdown_is_a_review_comment_with_a_table():
    text = render_markdown(_diff())
    lines = text.splitlines()
    assert lines[0] == "### Mixture manifest: `a.json` → `b.json`"
    header = next(line for line in lines if line.startswith("| dataset"))
    assert header == "| dataset | status | share | Δ share | token share | Δ token share | lines | tokens | changes |"
    wiki = next(line for line in lines if line.startswith("| `lm.wiki`"))
    assert "47.62% → 40.00%" in wiki and "**-7.62 pp**" in wiki and "1,000 → 1,200 (+200)" in wiki
    news = next(line for line in lines if line.startswith("| `lm.news`"))
    assert "weight: 2.0 → 3.0" in news and "$te\\|xt" in news  # a pipe must not split the cell
    assert "> ⚠️ same weights, different data: lm.wiki (content fingerprint changed, weight unchanged)" in lines
    assert all(line.count(" | ") == header.count(" | ") for line in lines if line.startswith("| `"))


def test_markdown_of_no_change_has_no_table():
    text = render_markdown(_diff(OLD, OLD))
    assert "| dataset" not in text and "3 datasets unchanged, share unmoved." in text


def test_json_holds_every_dataset_with_percentages():
    data = json.loads(render_json(_diff()))
    assert data["summary"]["added"] == 1 and data["summary"]["is_empty"] is False
    by_id = {d["identity"]: d for d in data["datasets"]}
    assert set(by_id) == {"lm.wiki", "lm.news", "lm.code", "qa.old"}
    assert round(by_id["lm.code"]["share_new_pct"], 6) == 10.0
    assert by_id["lm.wiki"]["nlines"] == {"old": 1000, "new": 1200, "delta": 200,
                                         "source_old": "manifest", "source_new": "manifest"}
    assert by_id["lm.wiki"]["same_weights_different_data"] is True
    assert {"field": "weight", "old": 2.0, "new": 3.0} in by_id["lm.news"]["changes"]


def test_terminal_table_names_datasets_and_ends_with_the_summary():
    console = Console(record=True, width=200)
    render_terminal(_diff(), console)
    text = console.export_text()
    assert "lm.wiki" in text and "+ added" in text and "- removed" in text
    assert text.rstrip().splitlines()[-1] == summary_line(_diff())


def test_unknown_shares_are_said_not_guessed():
    manifest = MixtureManifest.model_validate(cpm_bee_manifest())
    text = render_markdown(_diff(manifest, MixtureManifest([])))
    assert "unknown" in text and "sampling shares of the old manifest unknown: nlines unknown for mlm.pretrain" in text


def test_show_views_list_every_dataset():
    view = overview(NEW, line_counts(NEW, None))
    console = Console(record=True, width=200)
    render_overview_terminal(view, console, "b.json")
    text = console.export_text()
    assert "lm.code" in text and "3 datasets; total lines 2,000, bytes unknown, tokens 99,000" in text
    assert "| `lm.news` | 3 | 50.00% | 56.60% |" in render_overview_markdown(view, "b.json")
    data = json.loads(render_overview_json(view))
    assert [d["identity"] for d in data["datasets"]] == ["lm.wiki", "lm.news", "lm.code"]
    assert data["datasets"][0]["settings"]["fingerprints.content"] == "b" * 64


def test_textconv_writes_one_setting_a_line_in_full():
    text = render_textconv(overview(NEW, line_counts(NEW, None)))
    assert "[lm.news]\n  share                  50.00%\n  token share            56.60%\n" in text
    assert "  weight                 3.0\n" in text
    assert "  transforms             1 mapping(s)\n    - {\"text\": \"$te|xt\"}\n" in text
    assert "  fingerprints.content   \"" + "b" * 64 + "\"\n" in text
    assert text == render_textconv(overview(NEW, line_counts(NEW, None)))  # deterministic
