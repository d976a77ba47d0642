"""Prefect flow `pretrain`: validate a run config, start the `deepspeed` launcher, stream its log.

It never trains by itself: the command is `trainer.launch.deepspeed_command`, the same one
`bee train` runs.
"""

from __future__ import annotations

import subprocess
from collections import deque
from pathlib import Path

from prefect import flow, get_run_logger

from schemas import load_run_config


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
    training loss and where checkpoints and metrics are. Raises RuntimeError with the end of
    the launcher's log when training fails.
    """
    from trainer.launch import deepspeed_command, free_local_port, launch_environment
    from trainer.metrics import read_metrics

    logger = get_run_logger()
    run = load_run_config(run_config, list(overrides or []))  # fails here, before any process starts
    master_port = None if hostfile else free_local_port()
    command = deepspeed_command(run_config, num_gpus, hostfile, resume, list(overrides or []),
                                master_port=master_port)
    logger.info("starting: %s", " ".join(command))
    tail: deque[str] = deque(maxlen=40)
    with subprocess.Popen(command, env=launch_environment(cpu), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as launcher:
        for line in launcher.stdout:
            line = line.rstrip()
            tail.append(line)
            logger.info(line)
    if launcher.returncode != 0:
        raise RuntimeError(f"deepspeed exited with {launcher.returncode}:\n" + "\n".join(tail))

    log_dir = Path(run.log_dir or Path(run.checkpoint.dir) / "logs")
    metrics_path = log_dir / f"{run.name}.metrics.jsonl"
    losses = [record["loss"] for record in read_metrics(metrics_path)]
    return {
        "checkpoint_dir": run.checkpoint.dir,
        "metrics": str(metrics_path),
        "steps": len(losses),
        "first_loss": losses[0] if losses else float("nan"),
        "last_loss": losses[-1] if losses else float("nan"),
    }
