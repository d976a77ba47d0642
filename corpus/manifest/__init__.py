"""Mixture manifests (CPM-Bee's `datasets.json`): storage, editing and review tooling.

Docs: corpus/manifest/README.md. The `bee manifest` commands live in `corpus.manifest.cli`.
"""

from corpus.manifest.diff import DatasetDiff, FieldChange, ManifestDiff, StatDelta, diff_manifests
from corpus.manifest.edit import add_entry, remove_entry, set_weight
from corpus.manifest.lines import LineCount, line_count, line_counts, sampling_nlines
from corpus.manifest.overview import ManifestOverview, overview
from corpus.manifest.render_diff import render_json, render_markdown, render_terminal
from corpus.manifest.shares import Shares, sampling_shares, token_shares
from corpus.manifest.store import read_manifest, upsert_entry, write_manifest
from corpus.manifest.validate import validate_manifest

__all__ = [
    "DatasetDiff",
    "FieldChange",
    "LineCount",
    "ManifestDiff",
    "ManifestOverview",
    "Shares",
    "StatDelta",
    "add_entry",
    "diff_manifests",
    "line_count",
    "line_counts",
    "overview",
    "read_manifest",
    "remove_entry",
    "render_json",
    "render_markdown",
    "render_terminal",
    "sampling_nlines",
    "sampling_shares",
    "set_weight",
    "token_shares",
    "upsert_entry",
    "validate_manifest",
    "write_manifest",
]
