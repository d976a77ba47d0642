"""Fine-tuning from a pretrained CPM-Bee: the pretraining loop on a fine-tuning manifest, full or LoRA.

    deepspeed --num_gpus N --module trainer.finetune --config ft.yaml [--resume]     (or `bee train finetune`)

The run config's `finetune:` section names the pretrained weights (`init_from`: a state dict
file with cpm_live or Hugging Face names, or a checkpoint folder of this trainer) and the
method. With `lora`, only the LoRA tensors train; checkpoints hold only them (plus their
optimizer state) and the run ends by writing `<checkpoint.dir>/delta.pt`, the delta alone.
With `full`, every weight trains and the run ends by writing `<checkpoint.dir>/model.pt` in
cpm_live layout.
"""

from __future__ import annotations

if __name__ == "__main__":  # the entry point: pick DeepSpeed's accelerator before anything imports deepspeed
    from trainer.engine import prepare_accelerator_env

    prepare_accelerator_env()

import io
from pathlib import Path
from typing import Any

import deepspeed
import torch

from corpus.atomic_file import write_bytes_atomically, write_text_atomically
from schemas.run_config import RunConfig
from trainer.export import cpm_live_config_path
from trainer.lora import add_lora, lora_state_dict
from trainer.model_io import describe_checkpoint, read_state_dict
from trainer.pretrain import Trainer, run_entry_point
from trainer.weight_names import from_cpm_live_state_dict, to_cpm_live_state_dict

DELTA_FILE = "delta.pt"
MODEL_FILE = "model.pt"


def load_pretrained_state(init_from: str) -> dict[str, torch.Tensor]:
    """Weights to start from, by cpm_live or HF name: any checkpoint `trainer.model_io.load_model`
    reads (a state dict file, an HF port folder, a checkpoint folder of this trainer: its root,
    whose `latest` is used, or one `step-N` folder). Raises FileNotFoundError / ModelLoadError naming the path."""
    try:
        return read_state_dict(describe_checkpoint(init_from))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"finetune.init_from: {error}") from None


def build_finetune_model(run: RunConfig) -> torch.nn.Module:
    """The pretrained model, with LoRA modules (everything else frozen) when method is lora."""
    finetune = run.finetune
    model = from_cpm_live_state_dict(
        run.model.resolve(), load_pretrained_state(finetune.init_from), run.model.activation_checkpointing, copy=False
    )
    if finetune.method == "lora":
        torch.manual_seed(run.seed)  # the same LoRA A on every rank
        add_lora(model, finetune.lora_targets, finetune.lora_rank, finetune.lora_alpha, finetune.lora_dropout)
    return model


def export_weights(engine: Any, run: RunConfig, rank: int) -> Path:
    """Gather the trained weights and write them (rank 0, atomically): the LoRA delta alone, or
    the whole model in cpm_live layout. Returns the file's path."""
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
        if not delta:  # model.json beside model.pt, as `bee export --format cpm-live` writes it
            write_text_atomically(cpm_live_config_path(path), run.model.resolve().model_dump_json(indent=2) + "\n")
        print(f"| wrote {'LoRA delta' if delta else 'model'} to {path}", flush=True)
    return path


def finetune(run: RunConfig, resume: bool = False) -> Path:
    """Fine-tune in this process (one rank of a DeepSpeed launch). Returns the exported file.
    Raises ValueError when the config has no `finetune:` section."""
    if run.finetune is None:
        raise ValueError("fine-tuning needs a `finetune:` section in the run config (init_from, method)")
    trainer = Trainer(run, build_finetune_model)
    if resume:
        trainer.resume()
    trainer.fit()
    return export_weights(trainer.engine, run, trainer.rank)


def main(argv: list[str] | None = None) -> int:
    return run_entry_point(finetune, argv)


if __name__ == "__main__":
    raise SystemExit(main())
