"""The Beam corpus build: raw txt/json in; Parquet shards, rejects, a CPM-Bee binary dataset, a
report and a manifest entry out. See corpus/pipeline/README.md.
"""

from corpus.pipeline import quiet_beam  # noqa: F401  (first: before any stage imports apache_beam)
from corpus.pipeline.build import BuildError, BuildResult, build_corpus

__all__ = ["BuildError", "BuildResult", "build_corpus"]
