"""Prefect flow `pretrain`: validate a run config, start the `deepspeed` launcher, stream its log.

It never trains by itself: the command is `trainer.launch.deepspeed_command`, the same one
`bee train` runs.
"""

from __future__ import annotations

import subprocess
from collections import deque

from prefect import flow, get_run_logger


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
    from trainer.launch import free_local_port, launch_environment, prepare_launch
    from trainer.metrics import metrics_path, read_metrics, run_log_dir

    logger = get_run_logger()
    run, command = prepare_launch(run_config, num_gpus, hostfile, resume, list(overrides or []),
                                  master_port=None if hostfile else free_local_port())
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

    metrics = metrics_path(run_log_dir(run), run.name)
    losses = [record["loss"] for record in read_metrics(metrics)]
    return {
        "checkpoint_dir": run.checkpoint.dir,
        "metrics": str(metrics),
        "steps": len(losses),
        "first_loss": losses[0] if losses else float("nan"),
        "last_loss": losses[-1] if losses else float("nan"),
    }
