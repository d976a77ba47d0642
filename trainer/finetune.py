"""Fine-tuning from a pretrained CPM-Bee: the pretraining loop on a fine-tuning manifest, full or LoRA.

    deepspeed --num_gpus N trainer/finetune.py --config ft.yaml [--resume]     (or `bee train finetune`)

The run config's `finetune:` section names the pretrained weights (`init_from`: a state dict
file with cpm_live or Hugging Face names, or a checkpoint folder of this trainer) and the
method. With `lora`, only the LoRA tensors train; checkpoints hold only them (plus their
optimizer state) and the run ends by writing `<checkpoint.dir>/delta.pt`, the delta alone.
With `full`, every weight trains and the run ends by writing `<checkpoint.dir>/model.pt` in
cpm_live layout.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # see trainer/pretrain.py: imports go through the installed package, not trainer/ itself
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

import io
from typing import Any

import torch

from schemas.run_config import RunConfig

DELTA_FILE = "delta.pt"
MODEL_FILE = "model.pt"


def load_pretrained_state(init_from: str) -> dict[str, torch.Tensor]:
    """Weights to start from: a `.pt`/`.bin` state dict, or a checkpoint folder of this trainer
    (its root, whose `latest` is used, or one `step-N` folder), consolidated from ZeRO partitions.
    Every file is read as plain data (trainer.safe_load). Raises FileNotFoundError /
    CheckpointError naming the path, UnsafeCheckpoint naming a file that is not plain data."""
    from trainer.checkpoint import COMPLETE_FILE, LATEST_FILE, CheckpointDir, CheckpointError
    from trainer.safe_load import deepspeed_reads_restricted, load_checkpoint_file

    path = Path(init_from)
    if path.is_file():
        state = load_checkpoint_file(path)
        return state.get("state_dict", state) if isinstance(state, dict) else state
    if not path.is_dir():
        raise FileNotFoundError(f"finetune.init_from: {path} does not exist")
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    if (path / LATEST_FILE).is_file():
        root, tag = path, CheckpointDir(path).latest()
    else:
        root, tag = path.parent, path.name
    if tag is None or not (root / tag / COMPLETE_FILE).is_file():
        raise CheckpointError(f"finetune.init_from: {path} is not a complete checkpoint of this trainer")
    with deepspeed_reads_restricted(root / tag):  # zero_to_fp32 asks torch.load for weights_only=False
        return dict(get_fp32_state_dict_from_zero_checkpoint(str(root), tag=tag))


def build_finetune_model(run: RunConfig) -> torch.nn.Module:
    """The pretrained model, with LoRA modules (everything else frozen) when method is lora."""
    from trainer.lora import add_lora
    from trainer.model import from_cpm_live_state_dict

    finetune = run.finetune
    model = from_cpm_live_state_dict(
        run.model.resolve(), load_pretrained_state(finetune.init_from), run.model.activation_checkpointing
    )
    if finetune.method == "lora":
        torch.manual_seed(run.seed)  # the same LoRA A on every rank
        add_lora(model, finetune.lora_targets, finetune.lora_rank, finetune.lora_alpha, finetune.lora_dropout)
    return model


def export_weights(engine: Any, run: RunConfig, rank: int) -> Path:
    """Gather the trained weights and write them (rank 0, atomically): the LoRA delta alone, or
    the whole model in cpm_live layout. Returns the file's path."""
    import deepspeed

    from corpus.atomic_file import write_bytes_atomically
    from trainer.lora import lora_state_dict
    from trainer.model import to_cpm_live_state_dict

    model = engine.module
    delta = run.finetune.method == "lora"
    params = [p for p in model.parameters() if p.requires_grad] if delta else list(model.parameters())
    with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
        state = lora_state_dict(model) if delta else to_cpm_live_state_dict(model)
    path = Path(run.checkpoint.dir) / (DELTA_FILE if delta else MODEL_FILE)
    if rank == 0:
        payload: dict[str, Any] = {k: v.float().cpu() for k, v in state.items()}
        if delta:
            f = run.finetune
            payload = {"lora": payload, "rank": f.lora_rank, "alpha": f.lora_alpha, "targets": f.lora_targets}
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        write_bytes_atomically(path, buffer.getvalue())
        print(f"| wrote {'LoRA delta' if delta else 'model'} to {path}", flush=True)
    return path


def finetune(run: RunConfig, resume: bool = False) -> Path:
    """Fine-tune in this process (one rank of a DeepSpeed launch). Returns the exported file.
    Raises ValueError when the config has no `finetune:` section."""
    from trainer.pretrain import Trainer

    if run.finetune is None:
        raise ValueError("fine-tuning needs a `finetune:` section in the run config (init_from, method)")
    trainer = Trainer(run, build_finetune_model)
    if resume:
        trainer.resume()
    trainer.fit()
    return export_weights(trainer.engine, run, trainer.rank)


def main(argv: list[str] | None = None) -> int:
    from trainer.pretrain import run_entry_point

    return run_entry_point(finetune, argv)


if __name__ == "__main__":
    raise SystemExit(main())
