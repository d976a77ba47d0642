"""CCPM through `bee eval`: a tiny model fine-tuned on CPU on CCPM's first part, scored on the rest.

    .venv/bin/python tests/benchmarks/bench_ccpm_eval.py [--data ../shared/cpm-bee/ccpm_eval.jsonl]
        [--work /tmp/ccpm-bench] [--train 2000] [--steps 1000] [--processes 1]

The point is the machinery (CPM-Bee's fine-tuning tutorial, end to end, with this project's
own tools), not the accuracy: a 2-layer model trained for a few minutes stays near chance (25%,
four options). Every step is a `bee` command, printed as it runs:

1. the first `--train` lines of the JSONL become a training dataset and the rest an eval
   dataset (`bee corpus build`, structured samples), each with its mixture manifest;
2. a vocabulary is learned from the training dataset (`bee vocab build --size 4000`: the tiny
   preset has 4096 embedding rows);
3. a randomly initialised tiny model is written as the "pretrained" weights, and fully
   fine-tuned for `--steps` steps (`bee train finetune --cpu`), with task evaluation on 100
   eval samples every 100 steps (eval.samples, accuracy by option perplexity in metrics.jsonl);
4. `bee eval` scores the fine-tuned model on every eval sample, both ways (option perplexity
   on the option labels, as the fine-tuning trained them, and beam-search generation).

Prints the accuracies, samples/s of `bee eval` (its own clock: model loading excluded), the
CPU seconds of each command and the load average, as a Markdown block for RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "cpm-bee" / "ccpm_eval.jsonl"


def bee(*args: str, log: list[str]) -> float:
    """Run `bee ARGS` (this interpreter, this checkout); returns the CPU seconds it and its children used."""
    command = [sys.executable, "-m", "flows.cli", *args]
    print("$ bee " + " ".join(args), flush=True)
    log.append("bee " + " ".join(args))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ccpm-bench"))
    parser.add_argument("--train", type=int, default=2000, help="Lines of the JSONL to fine-tune on; the rest are scored.")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=1, help="CPU ranks of the fine-tuning run.")
    args = parser.parse_args(argv)

    from schemas.model_config import preset
    from trainer.model import CPMBee
    from trainer.weight_names import to_cpm_live_state_dict

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    lines = [line for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    for part, chunk in (("train", lines[: args.train]), ("eval", lines[args.train :])):
        (work / "raw" / part).mkdir(parents=True, exist_ok=True)
        (work / "raw" / part / "ccpm.jsonl").write_text("\n".join(chunk) + "\n", encoding="utf-8")
    log: list[str] = []
    cpu: dict[str, float] = {}
    started = time.perf_counter()
    for part in ("train", "eval"):
        cpu[f"build {part}"] = bee("corpus", "build", "--input", str(work / "raw" / part), "--output", str(work / part),
                                   "--dataset-name", f"ccpm_{part}", "--task-name", "ccpm",
                                   "--manifest", str(work / f"{part}.json"), log=log)  # fmt: skip
    vocab = work / "vocab.txt"
    cpu["vocab"] = bee("vocab", "build", "--corpus", str(work / "train" / "data"), "--size", "4000",
                       "-o", str(vocab), log=log)  # fmt: skip
    torch.manual_seed(0)
    torch.save(to_cpm_live_state_dict(CPMBee(preset("tiny"))), work / "init.pt")
    run = {
        "name": "ccpm",
        "model": {"preset": "tiny"},
        "data": {"manifest": str(work / "train.json"), "eval_manifest": str(work / "eval.json"),
                 "vocab": str(vocab), "batch_size": 8, "max_length": 160, "max_depth": 8},
        "optimizer": {"lr": 5e-3},
        "schedule": {"kind": "cosine", "warmup_steps": 20},
        "checkpoint": {"dir": str(work / "ckpt"), "interval": 1000},
        "eval": {"interval": 100, "batches": 2, "samples": 100, "score": "label"},
        "finetune": {"init_from": str(work / "init.pt"), "method": "full"},
        "max_steps": args.steps,
        "log_interval": 50,
        "trace": False,
    }  # fmt: skip
    (work / "run.yaml").write_text(yaml.safe_dump(run), encoding="utf-8")
    train_started = time.perf_counter()
    cpu["finetune"] = bee("train", "finetune", str(work / "run.yaml"), "--cpu", "--gpus", str(args.processes), log=log)
    train_seconds = time.perf_counter() - train_started
    report_path = work / "report.json"
    cpu["eval"] = bee("eval", str(work / "ckpt" / "model.pt"), "--data", str(work / "raw" / "eval" / "ccpm.jsonl"),
                      "--vocab", str(vocab), "--score", "label", "--max-depth", "8", "--json", str(report_path),
                      "--markdown", str(work / "report.md"), log=log)  # fmt: skip
    report = json.loads(report_path.read_text(encoding="utf-8"))
    ccpm = report["tasks"]["ccpm"]
    evals = [json.loads(line) for line in (work / "ckpt" / "logs" / "ccpm.metrics.jsonl").read_text().splitlines()]
    in_training = [(r["step"], r["tasks"]["ccpm"]["accuracy_perplexity"], r["task_seconds"]) for r in evals if r["kind"] == "eval"]
    load = os.getloadavg()
    print(f"\n## CCPM through bee eval ({len(lines) - args.train} samples scored, {args.train} fine-tuned on)\n")
    print("| | value |\n|---|---:|")
    print(f"| accuracy by option perplexity (labels) | {100 * ccpm['accuracy_perplexity']:.2f}% |")
    print(f"| accuracy by generation (beam 3) | {100 * ccpm['accuracy_generation']:.2f}% |")
    print(f"| bee eval: samples/s (both ways, model load excluded) | {report['samples_per_second']:.2f} |")
    print(f"| fine-tuning: {args.steps} steps, wall seconds | {train_seconds:.0f} |")
    for step, accuracy, seconds in in_training:
        print(f"| in-training task eval at step {step} (100 samples): accuracy, seconds | {100 * accuracy:.2f}%, {seconds:.1f} |")
    print("\nCPU seconds (process + children): " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()))
    print(f"total wall {time.perf_counter() - started:.0f} s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("\ncommands:\n" + "\n".join(log))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
