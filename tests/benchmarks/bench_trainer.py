"""Trainer throughput on CPU: ZeRO-3 with 2 processes beside a plain single-process PyTorch loop.

    .venv/bin/python tests/benchmarks/bench_trainer.py [--steps 20] [--seq 256] [--batch 4]

Both train the same small CPM-Bee (dim 256, 4 layers) on the same tiny mixture, with the
background data loader; tokens/s counts non-padding tokens (all ranks), median over steps
after the first 3. Anchors: the data loader must keep data-wait under 5% of step time; on a
2-core machine the two ZeRO-3 ranks share the cores that the plain loop has to itself, so the
comparison shows DeepSpeed's overhead (partition gathers, gloo reductions), not scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainer"))
from pretrain_fixtures import write_run  # noqa: E402

from schemas import ModelConfig, load_run_config  # noqa: E402
from trainer.launch import LaunchSpec, deepspeed_command, free_local_port, launch_environment  # noqa: E402
from trainer.metrics import read_metrics  # noqa: E402

SMALL = ModelConfig(
    vocab_size=4096, dim_model=256, dim_ff=1024, num_layers=4, num_heads=4, dim_head=64,
    position_bias_num_buckets=32, position_bias_num_segment_buckets=32, position_bias_max_distance=256, half=False,
)  # fmt: skip
WARMUP_STEPS = 3


def prepare(root: Path, steps: int, seq: int, batch: int) -> Path:
    (root / "small.json").write_text(SMALL.model_dump_json(), encoding="utf-8")
    config_path = write_run(root)
    config = yaml.safe_load(config_path.read_text())
    config["model"] = {"config": str(root / "small.json")}
    config["data"].update(batch_size=batch, max_length=seq, eval_manifest=None)
    config.update(max_steps=steps, log_interval=5)
    config["checkpoint"]["interval"] = 10**6  # one save at the end
    config["schedule"] = {"kind": "constant", "warmup_steps": 1}
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return config_path


def zero3(config: Path) -> dict[str, float]:
    started = time.perf_counter()
    result = subprocess.run(
        deepspeed_command(LaunchSpec(config, num_gpus=2, master_port=free_local_port())), env=launch_environment(cpu=True),
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-2000:] + result.stderr[-2000:])
    records = read_metrics(config.parent / "ckpt" / "logs" / "tiny.metrics.jsonl")[WARMUP_STEPS:]
    return {
        "tokens_per_s": statistics.median(r["tokens_per_second"] for r in records),
        "step_s": statistics.median(r["step_seconds"] for r in records),
        "data_wait_fraction": sum(r["data_wait_seconds"] for r in records) / sum(r["step_seconds"] for r in records),
        "wall_s": time.perf_counter() - started,
    }


def plain(config_path: Path) -> dict[str, float]:
    """The same model, optimizer and loss in a plain loop: no DeepSpeed, one process."""
    from tokenization.tokenizer import CPMBeeTokenizer
    from trainer.data import MixtureLoader
    from trainer.engine import model_inputs
    from trainer.metrics import mean_loss, token_losses
    from trainer.model import CPMBee

    run = load_run_config(config_path)
    torch.manual_seed(run.seed)
    model = CPMBee(run.model.resolve())
    optimizer = torch.optim.AdamW(model.parameters(), lr=run.optimizer.lr, betas=run.optimizer.betas,
                                  weight_decay=run.optimizer.weight_decay)  # fmt: skip
    data = run.data
    loader = MixtureLoader.from_config(data, data.manifest, CPMBeeTokenizer(data.vocab), 0, 1, run.seed)
    rates, steps, waits = [], [], []
    device = torch.device("cpu")
    try:
        for step in range(run.max_steps):
            started = time.perf_counter()
            batch = next(loader)
            logits, _ = model(**model_inputs(batch, device))
            loss = mean_loss(*token_losses(logits, torch.from_numpy(batch["target"])))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), run.optimizer.grad_clip)
            optimizer.step()
            elapsed = time.perf_counter() - started
            if step >= WARMUP_STEPS:
                rates.append(int(batch["length"].sum()) / elapsed)
                steps.append(elapsed)
                waits.append(loader.last_wait_seconds)
    finally:
        loader.close()
    return {"tokens_per_s": statistics.median(rates), "step_s": statistics.median(steps),
            "data_wait_fraction": sum(waits) / sum(steps)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="Alternate the two this many times; report the best.")
    args = parser.parse_args()
    load_before = os.getloadavg()
    singles, shardeds = [], []
    for _ in range(args.repeats):  # the machine is shared: alternate, keep the fastest of each
        with tempfile.TemporaryDirectory() as tmp:
            config = prepare(Path(tmp), args.steps, args.seq, args.batch)
            singles.append(plain(config))
            shardeds.append(zero3(config))
    single = max(singles, key=lambda r: r["tokens_per_s"])
    sharded = max(shardeds, key=lambda r: r["tokens_per_s"])
    params = sum(p.numel() for p in __import__("trainer.model", fromlist=["CPMBee"]).CPMBee(SMALL).parameters())
    print(json.dumps({"model_params": params, "seq": args.seq, "batch_per_rank": args.batch, "steps": args.steps,
                      "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                      "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
                      "all_tokens_per_s": {"plain": [r["tokens_per_s"] for r in singles],
                                           "zero3": [r["tokens_per_s"] for r in shardeds]},
                      "plain_1proc": single, "zero3_2proc": sharded}, indent=2))  # fmt: skip
    print(f"plain 1 process : {single['tokens_per_s']:8.0f} tok/s  step {single['step_s']:.3f}s  "
          f"data wait {100 * single['data_wait_fraction']:.1f}%   (anchor: data wait < 5%)")
    print(f"ZeRO-3 2 procs  : {sharded['tokens_per_s']:8.0f} tok/s  step {sharded['step_s']:.3f}s  "
          f"data wait {100 * sharded['data_wait_fraction']:.1f}%   (2 ranks share the same cores)")


if __name__ == "__main__":
    main()
