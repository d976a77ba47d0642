"""`bee train` (pretraining or fine-tuning through the `deepspeed` launcher) and `bee export` (trainer/export.py).

    bee train pretrain run.yaml --gpus 8 [--hostfile H] [--resume] [--set optimizer.lr=3e-4]
    bee train finetune ft.yaml --gpus 2 --cpu
    bee train pretrain run.yaml --print-command      # show the deepspeed command, run nothing
    bee export CHECKPOINT OUTPUT --format cpm-live|hf [--dtype fp16] [--merge-lora delta.pt]

It runs exactly `trainer.launch.deepspeed_command`, the command the README documents.
"""

from __future__ import annotations

import shlex
import subprocess
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from schemas import SchemaError

app = typer.Typer(
    name="train",
    help="Pretrain or fine-tune a CPM-Bee model with DeepSpeed ZeRO-3 (runs the deepspeed launcher).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

ConfigArg = Annotated[Path, typer.Argument(help="Run config (YAML/JSON, schemas.RunConfig).", exists=True, dir_okay=False)]
GpusOpt = Annotated[Optional[int], typer.Option("--gpus", help="Processes per machine (GPUs; CPU ranks with --cpu). Default: all GPUs.")]
HostfileOpt = Annotated[Optional[Path], typer.Option("--hostfile", help="DeepSpeed hostfile for multi-machine runs.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from the newest complete checkpoint.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config field: key.sub=value (repeatable).")]
CpuOpt = Annotated[bool, typer.Option("--cpu", help="Train on CPU (DeepSpeed CPU accelerator, gloo).")]
PrintOpt = Annotated[bool, typer.Option("--print-command", help="Print the deepspeed command and exit.")]


def _launch(entry: str, config: Path, gpus: int | None, hostfile: Path | None, resume: bool,
            overrides: list[str], cpu: bool, print_command: bool) -> None:  # fmt: skip
    from trainer.launch import LaunchSpec, compile_notices, launch_environment, prepare_launch

    try:
        _, command = prepare_launch(LaunchSpec(config, entry, gpus, hostfile, resume=resume, overrides=tuple(overrides)))
    except SchemaError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if print_command:
        typer.echo(shlex.join(command))
        return
    env = launch_environment(cpu)
    for notice in compile_notices(env):
        typer.echo(notice, err=True)
    typer.echo(f"$ {shlex.join(command)}", err=True)
    raise typer.Exit(subprocess.call(command, env=env))


@app.command("pretrain")
def pretrain_command(config: ConfigArg, gpus: GpusOpt = None, hostfile: HostfileOpt = None, resume: ResumeOpt = False,
                     set_: SetOpt = None, cpu: CpuOpt = False, print_command: PrintOpt = False) -> None:  # fmt: skip
    """Pretrain as the run config says (trainer.pretrain under deepspeed)."""
    _launch("pretrain", config, gpus, hostfile, resume, set_ or [], cpu, print_command)


@app.command("finetune")
def finetune_command(config: ConfigArg, gpus: GpusOpt = None, hostfile: HostfileOpt = None, resume: ResumeOpt = False,
                     set_: SetOpt = None, cpu: CpuOpt = False, print_command: PrintOpt = False) -> None:  # fmt: skip
    """Fine-tune from `finetune.init_from`, fully or with LoRA (trainer.finetune under deepspeed)."""
    _launch("finetune", config, gpus, hostfile, resume, set_ or [], cpu, print_command)


class ExportFormatOpt(str, Enum):
    cpm_live = "cpm-live"
    hf = "hf"


class ExportDtype(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


def export_command(
    checkpoint: Annotated[str, typer.Argument(help="A CPM-Bee .pt, an HF port file or folder, or a checkpoint folder of this trainer (its root or a step-N folder).")],
    output: Annotated[Path, typer.Argument(help="cpm-live: the weights file to write (its config goes beside it as <stem>.json); hf: the folder to write.")],
    format: Annotated[ExportFormatOpt, typer.Option("--format", help="cpm-live: one state dict with CPM-Bee's names; hf: the HF port's config.json + model.safetensors.")] = ExportFormatOpt.cpm_live,
    dtype: Annotated[ExportDtype, typer.Option("--dtype", help="Dtype of the written weights.")] = ExportDtype.fp32,
    merge_lora: Annotated[Optional[Path], typer.Option("--merge-lora", help="A LoRA delta (delta.pt of a LoRA fine-tune) folded into the weights.", exists=True, dir_okay=False)] = None,
    model_config: Annotated[Optional[str], typer.Option("--model-config", help="A preset name or a model config file (CPM-Bee JSON or HF config.json); default: the one beside the checkpoint.")] = None,
) -> None:  # fmt: skip
    """Write a checkpoint as CPM-Bee's (cpm_live names) or the HF port's files (bee export)."""
    from trainer.export import export_checkpoint
    from trainer.model_io import ModelLoadError
    from trainer.weight_names import CheckpointMismatch

    try:
        path = export_checkpoint(checkpoint, output, format.value, dtype=dtype.value, model_config=model_config,
                                 merge_lora=str(merge_lora) if merge_lora else None)  # fmt: skip
    except (FileNotFoundError, ModelLoadError, CheckpointMismatch, SchemaError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {format.value} {dtype.value} weights to {path}")
