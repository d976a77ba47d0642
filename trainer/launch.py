"""The `deepspeed` launcher command for a training run, and the environment it runs in.

`bee train`, the pretrain flow and the tests start training through these, so that there is one way to launch:

    deepspeed [--hostfile H] --num_gpus N [--master_port P] --module trainer.pretrain --config run.yaml [--resume] [--set k=v]

The entry point runs as a module (`python -m trainer.pretrain` in every rank), so imports go
through the `trainer` package and no module of trainer/ shadows a top-level one.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from schemas import RunConfig, SchemaError, load_run_config

ENTRY_POINTS = {"pretrain": "trainer.pretrain", "finetune": "trainer.finetune"}  # entry -> module the ranks run


@dataclass(frozen=True)
class LaunchSpec:
    """One training launch: which run, which entry point, on how many processes.

    Raises ValueError on construction for an unknown entry point.
    """

    config: str | os.PathLike  # the run config file (schemas.RunConfig)
    entry: str = "pretrain"  # a key of ENTRY_POINTS
    num_gpus: int | None = None  # processes per machine (on CPU: ranks); None: every GPU
    hostfile: str | os.PathLike | None = None  # DeepSpeed hostfile for a multi-machine run
    master_port: int | None = None  # None: DeepSpeed's default (29500)
    resume: bool = False  # continue from the newest complete checkpoint
    overrides: tuple[str, ...] = ()  # `key.sub=value` config overrides, in order

    def __post_init__(self) -> None:
        if self.entry not in ENTRY_POINTS:
            raise ValueError(f"unknown entry point {self.entry!r}; known: {', '.join(ENTRY_POINTS)}")
        object.__setattr__(self, "overrides", tuple(self.overrides))


def deepspeed_command(spec: LaunchSpec) -> list[str]:
    """The argv of a `deepspeed` launch of `spec` (the launcher next to this Python), running
    the entry point's module in every rank."""
    command = [str(Path(sys.executable).parent / "deepspeed")]
    if spec.hostfile is not None:
        command += ["--hostfile", str(spec.hostfile)]
    if spec.num_gpus is not None:
        command += ["--num_gpus", str(spec.num_gpus)]
    if spec.master_port is not None:
        command += ["--master_port", str(spec.master_port)]
    command += ["--module", ENTRY_POINTS[spec.entry], "--config", str(spec.config)]
    if spec.resume:
        command.append("--resume")
    for override in spec.overrides:
        command += ["--set", override]
    return command


def prepare_launch(spec: LaunchSpec) -> tuple[RunConfig, list[str]]:
    """The run config, validated before any process starts, and the `deepspeed_command` for it.
    Raises SchemaError for a config that does not match its schema, that its model cannot
    train (`RunConfig.model_problems`), or that fine-tunes without a `finetune:` section."""
    run = load_run_config(spec.config, list(spec.overrides))
    if spec.entry == "finetune" and run.finetune is None:
        raise SchemaError(str(spec.config), ["fine-tuning needs a `finetune:` section (init_from, method)"])
    run.check_model(run.model.resolve(), str(spec.config))  # before any process starts
    return run, deepspeed_command(spec)


def free_local_port() -> int:
    """A free loopback port for a single-node launch (several runs on one machine must not
    collide on DeepSpeed's default 29500)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_environment(cpu: bool = False, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a launch: DeepSpeed's CPU accelerator when `cpu` or when there is
    no GPU, and a torch-extensions folder of this virtualenv's own.

    DeepSpeed JIT-compiles its CPU communication op into ~/.cache/torch_extensions; two
    virtualenvs sharing that folder rebuild it on every alternation (minutes each), so each
    gets a sub-folder named after its path.
    """
    env = dict(os.environ if base is None else base)
    if cpu:
        env["DS_ACCELERATOR"] = "cpu"
    elif not torch.cuda.is_available():
        env.setdefault("DS_ACCELERATOR", "cpu")
    venv_key = hashlib.sha1(sys.prefix.encode()).hexdigest()[:12]
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "torch_extensions" / f"venv-{venv_key}"))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


SHM_COMM_OP = "deepspeed_shm_comm"  # DeepSpeed's shared-memory all-reduce for the CPU accelerator


def ops_to_compile(env: dict[str, str]) -> list[str]:
    """DeepSpeed ops a launch in `env` (launch_environment's) will JIT-compile before its first
    step, minutes each: on the CPU accelerator, the shared-memory all-reduce op, until its build
    is in the environment's TORCH_EXTENSIONS_DIR (or DeepSpeed was installed with it built).
    On CPU the optimizer is torch's AdamW (engine.deepspeed_config), which needs no compile."""
    if env.get("DS_ACCELERATOR") != "cpu":
        return []
    from deepspeed.git_version_info import installed_ops

    if installed_ops.get(SHM_COMM_OP):
        return []
    built = Path(env["TORCH_EXTENSIONS_DIR"]) / SHM_COMM_OP / f"{SHM_COMM_OP}.so"
    return [] if built.exists() else [SHM_COMM_OP]


def compile_notices(env: dict[str, str]) -> list[str]:
    """One line per op of `ops_to_compile(env)`, for the user to read before the launch seems
    to hang: what compiles, about how long, where it is cached."""
    return [f"compiling DeepSpeed's {op} op before the first step (first run in this environment, about "
            f"1-5 minutes; cached in {env['TORCH_EXTENSIONS_DIR']} afterwards)" for op in ops_to_compile(env)]

