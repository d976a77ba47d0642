"""Cost of `inspect_iters` (per-group weight/gradient statistics) under ZeRO-3, 2 CPU processes.

    .venv/bin/python tests/benchmarks/bench_param_stats.py [--steps 12] [--seq 256] [--batch 4]

The small CPM-Bee of bench_trainer.py (dim 256, 4 layers) trains with `inspect_iters: 2`;
the figure is the seconds each inspection took (its `inspect` record: local partition sums
plus two all-reduces) beside the median time of the run's steps without an inspection. Anchor: an inspection
costs less than one step, so `inspect_iters` of 100 or more adds under 1%.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_trainer import WARMUP_STEPS, prepare  # noqa: E402

from trainer.launch import LaunchSpec, deepspeed_command, free_local_port, launch_environment  # noqa: E402
from trainer.metrics import read_metrics  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = prepare(Path(tmp), args.steps, args.seq, args.batch)
        data = yaml.safe_load(config.read_text())
        data["inspect_iters"] = 2
        config.write_text(yaml.safe_dump(data), encoding="utf-8")
        result = subprocess.run(
            deepspeed_command(LaunchSpec(config, num_gpus=2, master_port=free_local_port())), env=launch_environment(cpu=True),
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(result.stdout[-2000:] + result.stderr[-2000:])
        log = config.parent / "ckpt" / "logs" / "tiny.metrics.jsonl"
        steps = [r for r in read_metrics(log)[WARMUP_STEPS:] if r["step"] % 2]  # steps without an inspection
        inspections = [r for r in read_metrics(log, "inspect") if r["step"] > WARMUP_STEPS]
    step_s = statistics.median(r["step_seconds"] for r in steps)
    inspect_s = statistics.median(r["seconds"] for r in inspections)
    print(json.dumps({"steps": args.steps, "seq": args.seq, "batch_per_rank": args.batch,
                      "groups": len(inspections[0]["groups"]), "load_avg": os.getloadavg(),
                      "inspect_seconds": [r["seconds"] for r in inspections], "median_step_seconds": step_s},
                     indent=2))  # fmt: skip
    print(f"inspection {inspect_s * 1000:.1f} ms vs step {step_s * 1000:.1f} ms "
          f"({100 * inspect_s / step_s:.1f}% of a step; {100 * inspect_s / step_s / 100:.2f}% at inspect_iters=100)")


if __name__ == "__main__":
    main()
