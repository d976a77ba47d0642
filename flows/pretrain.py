"""Prefect flow `pretrain`: validate a run config, start the `deepspeed` launcher, stream its log,
publish the run as an artifact (loss curve, tokens/s, checkpoint).

It never trains by itself: the command is `trainer.launch.deepspeed_command`, the same one
`bee train` runs.
"""

from __future__ import annotations

import statistics
import subprocess
from collections import deque
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

SPARK_BARS = "▁▂▃▄▅▆▇█"
CURVE_ROWS = 12  # steps listed in the artifact's loss table


def loss_sparkline(losses: list[float], width: int = 60) -> str:
    """The loss curve as one line of block characters (highest loss = tallest bar), at most
    `width` bars (each the mean of its slice of steps)."""
    if not losses:
        return ""
    size = max(1, -(-len(losses) // width))
    means = [statistics.fmean(losses[i:i + size]) for i in range(0, len(losses), size)]
    low, high = min(means), max(means)
    scale = (len(SPARK_BARS) - 1) / (high - low) if high > low else 0.0
    return "".join(SPARK_BARS[round((value - low) * scale)] for value in means)


def pretrain_summary_markdown(run_name: str, records: list[dict], checkpoint: str | None, metrics: Path) -> str:
    """The artifact of a training run: loss curve, throughput, where the checkpoint is."""
    lines = [f"# pretrain: {run_name}", ""]
    if not records:
        return "\n".join(lines + ["No training step was logged.", f"- metrics: `{metrics}`"]) + "\n"
    losses = [record["loss"] for record in records]
    speeds = [record["tokens_per_second"] for record in records[1:] or records]  # step 1 includes warm-up
    lines += [
        "| steps | first loss | last loss | best loss | tokens/s (median) | tokens | checkpoint |",
        "|---:|---:|---:|---:|---:|---:|---|",
        f"| {records[-1]['step']} | {losses[0]:.4f} | {losses[-1]:.4f} | {min(losses):.4f} "
        f"| {statistics.median(speeds):,.0f} | {sum(r['tokens'] for r in records):,} | `{checkpoint or 'none'}` |",
        "",
        f"loss `{loss_sparkline(losses)}` (step 1 → {records[-1]['step']})",
        "",
        "| step | loss | lr | tokens/s |",
        "|---:|---:|---:|---:|",
    ]
    stride = max(1, -(-len(records) // CURVE_ROWS))
    shown = records[::stride] + ([records[-1]] if (len(records) - 1) % stride else [])
    lines += [f"| {r['step']} | {r['loss']:.4f} | {r['lr']:.3e} | {r['tokens_per_second']:,.0f} |" for r in shown]
    lines += ["", f"- metrics (one JSON object a step): `{metrics}`"]
    return "\n".join(lines) + "\n"


def _artifact_key(run_name: str) -> str:
    # Prefect artifact keys: lowercase letters, digits and dashes.
    return "pretrain-" + "".join(c if c.isalnum() else "-" for c in run_name.lower())


@flow(name="pretrain", log_prints=True)
def pretrain(
    run_config: str,
    num_gpus: int | None = None,
    hostfile: str | None = None,
    resume: bool = False,
    overrides: list[str] | None = None,
    cpu: bool = False,
) -> dict:
    """Train the run `run_config` describes (a schemas.RunConfig file; `overrides` are `key=value`).

    `num_gpus` is per node (CPU processes with `cpu=True`). Returns the first and last
    training loss and where checkpoints and metrics are, and publishes them as an artifact.
    Raises RuntimeError with the end of the launcher's log when training fails.
    """
    from trainer.checkpoint import CheckpointDir
    from trainer.launch import LaunchSpec, compile_notices, free_local_port, launch_environment, prepare_launch
    from trainer.metrics import metrics_path, read_metrics, run_log_dir

    logger = get_run_logger()
    spec = LaunchSpec(run_config, "pretrain", num_gpus, hostfile, master_port=None if hostfile else free_local_port(),
                      resume=resume, overrides=tuple(overrides or ()))
    run, command = prepare_launch(spec)
    env = launch_environment(cpu)
    for notice in compile_notices(env):
        logger.info(notice)
    logger.info("starting: %s", " ".join(command))
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as launcher:
        for line in launcher.stdout:
            line = line.rstrip()
            tail.append(line)
            logger.info(line)
    if launcher.returncode != 0:
        raise RuntimeError(f"deepspeed exited with {launcher.returncode}:\n" + "\n".join(tail))

    metrics = metrics_path(run_log_dir(run), run.name)
    records = read_metrics(metrics)
    latest = CheckpointDir(run.checkpoint.dir).latest()
    checkpoint = str(Path(run.checkpoint.dir) / latest) if latest else None
    create_markdown_artifact(markdown=pretrain_summary_markdown(run.name, records, checkpoint, metrics),
                             key=_artifact_key(run.name), description=f"pretraining run {run.name}")
    losses = [record["loss"] for record in records]
    return {
        "checkpoint_dir": run.checkpoint.dir,
        "checkpoint": checkpoint,
        "metrics": str(metrics),
        "steps": len(losses),
        "first_loss": losses[0] if losses else float("nan"),
        "last_loss": losses[-1] if losses else float("nan"),
    }
