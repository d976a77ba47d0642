"""DeepSpeed wiring in one place: distributed setup, the ZeRO config a run gets, the engine.

Model code stays single-device (trainer/model.py); here it is wrapped: activation
checkpointing switched on, AdamW and the LR schedule attached, ZeRO-3 partitioning and the
precision (bf16 / fp16 with dynamic loss scale / fp32) applied by DeepSpeed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist

from schemas.run_config import RunConfig
from trainer.schedules import LRSchedule

Precision = Literal["fp32", "bf16", "fp16"]
INFRA_DIR = Path(__file__).resolve().parents[1] / "infra" / "deepspeed"
# keys the run config owns; a DeepSpeed JSON that sets them would be a second source of truth
RUN_OWNED_KEYS = ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
                  "gradient_clipping", "optimizer", "scheduler")  # fmt: skip


def on_gpu() -> bool:
    """True when training runs on CUDA devices (DS_ACCELERATOR=cpu forces the CPU path)."""
    return os.environ.get("DS_ACCELERATOR", "") != "cpu" and torch.cuda.is_available()


def prepare_accelerator_env() -> None:
    """Pick DeepSpeed's CPU accelerator when there is no GPU; call before importing deepspeed."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def init_distributed() -> tuple[int, int]:
    """Join the process group the launcher set up (gloo on CPU, nccl on GPU). Returns (rank, world_size)."""
    import deepspeed

    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if on_gpu() else "gloo")
    if on_gpu():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    else:
        dist.barrier()  # every rank has mapped every other rank's all-reduce segment
        shm_allreduce_segment(dist.get_rank()).unlink(missing_ok=True)
    return dist.get_rank(), dist.get_world_size()


def shm_allreduce_segment(rank: int) -> Path:
    """The /dev/shm segment (66 MB) DeepSpeed's CPU accelerator creates for `rank`'s all-reduce
    when all ranks are on one machine. DeepSpeed never unlinks it, so each run would leave one
    per rank behind in memory; once every rank has mapped them the names can go (the mappings
    stay valid)."""
    master = f"{os.environ.get('MASTER_ADDR', '')}_{os.environ.get('MASTER_PORT', '')}"
    return Path("/dev/shm") / f"deepspeed_allreduce_buffer_{os.getuid()}_{master}_{rank}"


def resolve_precision(run: RunConfig, model_half: bool) -> Precision:
    """The run's precision; `auto` is bf16 on GPU for a half model, fp32 otherwise.
    Raises ValueError for bf16/fp16 on CPU (DeepSpeed's CPU path trains in fp32)."""
    if run.precision == "auto":
        return "bf16" if on_gpu() and model_half else "fp32"
    if run.precision != "fp32" and not on_gpu():
        raise ValueError(f"precision {run.precision!r} needs a GPU; on CPU use 'fp32' or 'auto'")
    return run.precision


def deepspeed_config(run: RunConfig, precision: Precision) -> dict[str, Any]:
    """The DeepSpeed config dict: the precision's JSON from infra/deepspeed (or the run's own
    file) plus what the run config owns. Raises ValueError when the JSON sets a run-owned key."""
    path = Path(run.deepspeed_config) if run.deepspeed_config else INFRA_DIR / f"zero3_{precision}.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    clashes = [key for key in RUN_OWNED_KEYS if key in config]
    if clashes:
        raise ValueError(f"{path}: {', '.join(clashes)} belong in the run config (optimizer/data sections), not here")
    config.setdefault("zero_optimization", {})["stage"] = run.zero_stage
    config["train_micro_batch_size_per_gpu"] = run.data.batch_size
    config["gradient_accumulation_steps"] = run.optimizer.grad_accumulation
    config["gradient_clipping"] = run.optimizer.grad_clip
    config["optimizer"] = {
        "type": "AdamW",
        "params": {
            "lr": run.optimizer.lr,
            "betas": list(run.optimizer.betas),
            "eps": run.optimizer.eps,
            "weight_decay": run.optimizer.weight_decay,
            # On CPU DeepSpeed's FusedAdam is a C++ op it JIT-compiles before the first step
            # (minutes); torch's AdamW is the same update and needs no compile.
            "torch_adam": not on_gpu(),
        },
    }
    if precision == "fp16":
        config.setdefault("fp16", {}).update(enabled=True, initial_scale_power=run.fp16_initial_loss_scale_power)
    config.setdefault("bf16", {})["enabled"] = precision == "bf16"
    if precision != "fp16":
        config.setdefault("fp16", {})["enabled"] = False
    return config


def build_engine(model: torch.nn.Module, run: RunConfig, precision: Precision) -> tuple[Any, LRSchedule]:
    """Wrap `model` in a DeepSpeed engine with AdamW and the run's LR schedule.

    Only parameters with requires_grad are optimised (LoRA fine-tuning freezes the rest).
    Returns (engine, schedule); DeepSpeed steps the schedule after each applied optimizer
    step and keeps it in its checkpoints.
    """
    import deepspeed

    schedule_config = run.schedule
    # epochs runs have no max_steps: their cosine/linear schedules must name decay_steps (RunConfig checks)
    decay_steps = schedule_config.decay_steps or run.max_steps or 1
    holder: dict[str, LRSchedule] = {}

    def make_schedule(optimizer: Any) -> LRSchedule:
        holder["schedule"] = LRSchedule(
            optimizer, schedule_config.kind, run.optimizer.lr, schedule_config.warmup_steps,
            decay_steps, schedule_config.min_lr_ratio,
        )  # fmt: skip
        return holder["schedule"]

    engine, _, _, _ = deepspeed.initialize(
        model=model,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=deepspeed_config(run, precision),
        lr_scheduler=make_schedule,
    )
    return engine, holder["schedule"]


BATCH_TENSOR_KEYS = ("inputs", "inputs_sub", "length", "context", "sample_ids", "num_segments", "segment_ids",
                     "segment_rel_offset", "segment_rel", "spans", "ext_ids", "ext_sub")  # fmt: skip


def model_inputs(batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
    """The CPMBee.forward arguments from a packed batch (numpy arrays) on `device`."""
    tensors = {key: torch.from_numpy(batch[key]).to(device, non_blocking=True) for key in BATCH_TENSOR_KEYS}
    return {
        "input": tensors["inputs"], "input_sub": tensors["inputs_sub"], "length": tensors["length"],
        "context": tensors["context"].bool(), "sample_ids": tensors["sample_ids"],
        "num_segments": tensors["num_segments"], "segment": tensors["segment_ids"],
        "segment_rel_offset": tensors["segment_rel_offset"], "segment_rel": tensors["segment_rel"],
        "span": tensors["spans"], "ext_table_ids": tensors["ext_ids"], "ext_table_sub": tensors["ext_sub"],
    }  # fmt: skip
