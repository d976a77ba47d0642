"""One big input file: how fast the driver finds the line-aligned cuts (`ranges.line_cuts`),
and what reading it as byte ranges buys a build with several workers.

    .venv/bin/python tests/benchmarks/bench_big_file.py [--megabytes 50] [--workers 2] [--scan-megabytes 512]

Builds the same generated single-file corpus (letters-only words, a few exact duplicates) twice
with `--workers` local workers: once read whole by one worker (`read.split_bytes` above the
file size), once cut into ranges of `--megabytes / --workers` MB. Prints wall seconds and
each build's summary line, and checks that both datasets are the same bytes.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from corpus.pipeline.build import build_corpus
from corpus.pipeline.ranges import line_cuts
from schemas import BuildConfig


def write_corpus(path: Path, megabytes: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    words = ["".join(rng.choice("bcdfglmnprstvw") + rng.choice("aeiou") for _ in range(rng.randrange(1, 5)))
             for _ in range(5000)]
    lines: list[str] = []
    size = 0
    while size < megabytes * 1_000_000:
        n = len(lines)
        line = lines[n - 400] if n % 997 == 500 else f"Line {n}. " + " ".join(rng.choices(words, k=rng.randrange(60, 260))) + "."
        lines.append(line)
        size += len(line) + 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def scan_speed(folder: Path, megabytes: int) -> float:
    """MB/s of `line_cuts` over a cached file of `megabytes` MB (best of 3)."""
    path = folder / "scan.txt"
    line = (b"some words of a line of text " * 30)[:-1] + b"\n"
    block = line * (1_000_000 // len(line))
    with open(path, "wb") as out:
        out.writelines(block for _ in range(megabytes))
    size = path.stat().st_size
    best = min(_timed(lambda: line_cuts(str(path), size, 64 << 20)) for _ in range(3))
    path.unlink()
    return size / 1e6 / best


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _dataset_bytes(folder: Path) -> list[tuple[str, bytes]]:
    return sorted((p.name, p.read_bytes()) for p in folder.iterdir() if not p.name.startswith("."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scan-megabytes", type=int, default=512)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_big_file_"))
    try:
        print(f"line_cuts: {scan_speed(folder, args.scan_megabytes):.0f} MB/s over a cached {args.scan_megabytes} MB file")
        (folder / "in").mkdir()
        write_corpus(folder / "in" / "big.txt", args.megabytes)
        size = (folder / "in" / "big.txt").stat().st_size
        results = {}
        for name, split_bytes in (("whole", size + 1), ("ranges", size // args.workers + 1)):
            config = BuildConfig(input=[str(folder / "in")], output=str(folder / name / "ds"), dataset_name="big",
                                 task_name="bench", read={"split_bytes": split_bytes})
            result = build_corpus(config, [f"--direct_num_workers={args.workers}"], log=lambda line: None)
            results[name] = result
            print(f"{name:>6}: {result.seconds:6.1f} s wall | {result.summary_line()}")
        same = _dataset_bytes(results["whole"].dataset_path) == _dataset_bytes(results["ranges"].dataset_path)
        print(f"same dataset bytes: {same}; load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
