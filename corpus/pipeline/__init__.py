"""The Beam corpus build: raw txt/json in; Parquet shards, rejects, a CPM-Bee binary dataset, a
report and a manifest entry out. See corpus/pipeline/README.md.
"""

from corpus.pipeline.build import BuildError, BuildResult, build_corpus

__all__ = ["BuildError", "BuildResult", "build_corpus"]
