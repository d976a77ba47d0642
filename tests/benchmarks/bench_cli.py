"""How quick and quiet the command line is: `bee --help` wall time and CPU time (best and
median of N runs), and the lines a default corpus build of the sample QA corpus prints
(the default, one worker per core; 1 worker; 2 workers in multi_processing mode).

    .venv/bin/python tests/benchmarks/bench_cli.py [--runs 7] [--skip-builds]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE_JSON = REPO / "corpus" / "sample" / "raw" / "json"


def timed(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, its stdout + stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return wall, cpu, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--skip-builds", action="store_true")
    args = parser.parse_args()

    bee = [sys.executable, "-m", "flows.cli"]
    runs = [timed([*bee, "--help"]) for _ in range(args.runs)]
    walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
    warnings = sum("WARNING" in r[2] for r in runs)
    print(f"bee --help, {args.runs} runs: wall best {min(walls):.2f} s, median {statistics.median(walls):.2f} s; "
          f"CPU best {min(cpus):.2f} s, median {statistics.median(cpus):.2f} s; runs printing a warning: {warnings}")

    if args.skip_builds:
        return
    for label, flags in (("default: one worker per core", []), ("1 worker", ["--direct_num_workers=1"]),
                         ("2 workers", ["--direct_num_workers=2", "--direct_running_mode=multi_processing"])):
        with tempfile.TemporaryDirectory() as scratch:
            _, _, out = timed([*bee, "corpus", "build", "--input", str(SAMPLE_JSON), "--output", f"{scratch}/qa",
                               "--dataset-name", "qa", "--task-name", "sample", *flags])
        lines = out.splitlines()
        beam_lines = [line for line in lines if line.startswith(("WARNING:", "INFO:", "ERROR:"))]
        print(f"bee corpus build (sample QA, {label}): {len(lines)} lines printed, {len(beam_lines)} of them Beam log lines")


if __name__ == "__main__":
    main()
