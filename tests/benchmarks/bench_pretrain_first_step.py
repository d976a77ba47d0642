"""Time from starting the `pretrain` flow to its first training step, with a fresh
TORCH_EXTENSIONS_DIR (what a new environment gets: DeepSpeed JIT-compiles its CPU ops) and
again with that folder warm. The sample datasets, vocabulary and token shards are made first
in WORKDIR (as `bee demo` makes them) when missing.

    .venv/bin/python tests/benchmarks/bench_pretrain_first_step.py WORKDIR [--steps 3]

The flow runs in a subprocess, as a process worker runs it after `prefect deployment run
pretrain/pretrain` (the worker's poll interval, 10 s by default, comes on top).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

FLOW = ("import sys\nfrom flows.pretrain import pretrain\n"
        "pretrain(run_config=sys.argv[1], num_gpus=1, cpu=True)\n")


def prepare(workdir: Path, steps: int) -> Path:
    from flows.corpus_build import corpus_build
    from flows.demo import DEMO_MAX_DEPTH, sample_build_plan, sample_run_config, write_yaml
    from flows.retokenize import retokenize
    from tokenization.vocab_build import VocabBuildConfig, build_vocab_file

    manifest, vocab = workdir / "datasets.json", workdir / "vocab.txt"
    if not vocab.exists():
        plan = write_yaml(workdir / "build.yaml", sample_build_plan(workdir))
        builds = corpus_build(build_config=str(plan))
        build_vocab_file([b["dataset_path"] for b in builds], vocab, VocabBuildConfig(size=4096, min_char_count=1))
        retokenize(manifest=str(manifest), vocab=str(vocab), max_depth=DEMO_MAX_DEPTH)
    return write_yaml(workdir / "run.yaml", sample_run_config(workdir, manifest, vocab, steps))


def first_step_seconds(run_config: Path, extensions: str) -> tuple[float, float]:
    """(seconds to the first `| step 1/` line, seconds to the end of the flow)."""
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": extensions, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    started = time.perf_counter()
    first = None
    with subprocess.Popen([sys.executable, "-c", FLOW, str(run_config)], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as flow:
        for line in flow.stdout:
            if first is None and "| step 1/" in line:
                first = time.perf_counter() - started
            if "compiling DeepSpeed" in line:
                print("   ", line.strip()[-160:])
    if flow.returncode != 0:
        raise SystemExit(f"pretrain flow exited with {flow.returncode}")
    return first or float("nan"), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    run_config = prepare(args.workdir.resolve(), args.steps)
    with tempfile.TemporaryDirectory() as extensions:
        for label in ("fresh TORCH_EXTENSIONS_DIR", "warm TORCH_EXTENSIONS_DIR"):
            checkpoints = Path(yaml.safe_load(run_config.read_text())["checkpoint"]["dir"])
            subprocess.run(["rm", "-rf", str(checkpoints)], check=True)
            first, total = first_step_seconds(run_config, extensions)
            print(f"pretrain flow, {label}: first training step after {first:.1f} s (flow done in {total:.1f} s)")


if __name__ == "__main__":
    main()
