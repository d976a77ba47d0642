"""Benchmark: manifest diff on large mixtures, and the start-up cost of the textconv command.

    .venv/bin/python tests/benchmarks/bench_manifest_diff.py

Anchors: the diff of two 2,000-dataset manifests (far more than real mixtures, which hold tens
to hundreds) should stay interactive, under 0.1 s to compute; git runs textconv twice per
changed manifest, so one run should start and finish in under 1 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from corpus.dataset import write_meta
from corpus.manifest import diff_manifests, line_counts, render_json, render_markdown
from schemas import FileInfo, MixtureManifest

REPO_ROOT = Path(__file__).resolve().parents[2]


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def mixture(n: int, weight_of) -> MixtureManifest:
    return MixtureManifest.model_validate([
        {"dataset_name": f"d{i}", "task_name": "lm", "path": f"d{i}", "weight": weight_of(i),
         "nlines": 1000 + i, "nbytes": 10**6 + i, "ntokens": 10**5 + i,
         "fingerprints": {"content": f"{i:064x}", "vocab": "ab" * 32}, "transforms": [{"text": "$text"}]}
        for i in range(n)
    ])


def main() -> None:
    n = 2000
    old, new = mixture(n, lambda i: 1.0), mixture(n, lambda i: 2.0 if i % 10 == 0 else 1.0)
    old_lines, new_lines = line_counts(old, None), line_counts(new, None)
    diff = diff_manifests(old, new, old_lines, new_lines)
    t_diff = best_of(5, lambda: diff_manifests(old, new, old_lines, new_lines))
    t_md = best_of(5, lambda: render_markdown(diff))
    t_json = best_of(5, lambda: render_json(diff))
    print(f"diff of two {n:,}-dataset manifests ({len(diff.changed)} changed): {t_diff * 1000:.1f} ms (anchor: < 100 ms)")
    print(f"  markdown {t_md * 1000:.1f} ms, json {t_json * 1000:.1f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        count = 200
        for i in range(count):
            write_meta(base / f"d{i}", [FileInfo(file_name="part-0", block_begin=0, block_end=1, nbytes=10, nlines=i + 1)])
        bare = MixtureManifest.model_validate([{"dataset_name": f"d{i}", "task_name": "lm", "path": f"d{i}"} for i in range(count)])
        t_meta = best_of(5, lambda: line_counts(bare, base))
        print(f"nlines from meta.bin for {count} datasets (CPM-Bee manifest): {t_meta * 1000:.1f} ms")

        manifest = base / "datasets.json"
        manifest.write_text(json.dumps(json.loads(old.to_json())[:50]))
        bee = Path(sys.executable).parent / "bee"
        for label, command in (
            ("bee manifest textconv", [str(bee), "manifest", "textconv", str(manifest)]),
            ("python -m corpus.manifest.cli textconv", [sys.executable, "-m", "corpus.manifest.cli", "textconv", str(manifest)]),
        ):
            elapsed = best_of(3, lambda: subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True))
            print(f"{label} (50 datasets), best of 3: {elapsed:.2f} s (anchor: < 1 s per run)")


if __name__ == "__main__":
    main()
