"""The Beam corpus build: raw txt/json in; Parquet shards, rejects, a CPM-Bee binary dataset, a
report and a manifest entry out. See corpus/pipeline/README.md.

`build_corpus`, `BuildResult` and `BuildError` (build.py) are imported on first use: a worker
process imports this package to run a stage, and must not pay for build.py's imports (the
binary dataset writer, the manifest, the report).
"""

from corpus.pipeline import quiet_beam  # noqa: F401  (first: before any stage imports apache_beam)

__all__ = ["BuildError", "BuildResult", "build_corpus"]


def __getattr__(name: str):
    if name in __all__:
        from corpus.pipeline import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
