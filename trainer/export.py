"""`bee export`: any checkpoint `load_model` reads, written out as CPM-Bee's or the HF port's files.

- `cpm-live`: one state dict file with cpm_live names (what CPM-Bee's `bmt.load` and
  `CPMBeeTorch.load_state_dict` take) and, beside it, `<stem>.json`: the model config in
  CPM-Bee's format (as CPM-Bee ships `cpm-bee-10b.pt` with `config/cpm-bee-10b.json`).
- `hf`: a folder in the HF port's layout: `config.json` (transformers' CpmBeeConfig names)
  and `model.safetensors` (`cpmbee.` + cpm_live names).
Both are written atomically (a temp file or folder, then a rename) and read back by
`trainer.model_io.load_model` bit for bit.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import torch

from corpus.atomic_file import write_bytes_atomically, write_text_atomically
from schemas.model_config import ModelConfig, to_hf_config
from trainer.model_io import HF_CONFIG_FILE, load_model, resolve_dtype
from trainer.weight_names import to_cpm_live_state_dict, to_hf_state_dict

ExportFormat = Literal["cpm-live", "hf"]
HF_WEIGHTS_FILE = "model.safetensors"


def cpm_live_config_path(weights: Path) -> Path:
    """Where the model config of a cpm-live export lives: `<stem>.json` beside the weights."""
    return weights.with_suffix(".json")


def write_cpm_live(state: dict[str, torch.Tensor], config: ModelConfig, output: Path) -> Path:
    """Write `output` (a torch state dict file) and `<stem>.json`. Returns `output`."""
    if output.suffix == ".json":
        raise ValueError(f"{output}: the weights file needs a name that is not .json (e.g. model.pt)")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomically(output, buffer.getvalue())
    write_text_atomically(cpm_live_config_path(output), config.model_dump_json(indent=2) + "\n")
    return output


def write_hf(state: dict[str, torch.Tensor], config: ModelConfig, output: Path) -> Path:
    """Write the HF-port folder `output` (replaced whole, atomically). Returns `output`."""
    from safetensors.torch import save_file

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        save_file({key: value.contiguous() for key, value in state.items()}, tmp / HF_WEIGHTS_FILE, metadata={"format": "pt"})
        (tmp / HF_CONFIG_FILE).write_text(json.dumps(to_hf_config(config), indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)
        if output.exists():
            old = output.with_name(f".{output.name}.old")
            os.replace(output, old)
            os.replace(tmp, output)
            shutil.rmtree(old)
        else:
            os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output


def export_checkpoint(
    checkpoint: str,
    output: str | Path,
    format: ExportFormat,
    dtype: str | torch.dtype | None = None,
    model_config: str | None = None,
    merge_lora: str | None = None,
) -> Path:
    """Load `checkpoint` (any kind `load_model` reads; LoRA delta `merge_lora` folded in) and
    write it as `format` in `dtype` (default float32). Returns the path written."""
    model, config = load_model(checkpoint, model_config=model_config, delta=merge_lora, dtype=resolve_dtype(dtype))
    output = Path(output)
    if format == "cpm-live":
        return write_cpm_live(to_cpm_live_state_dict(model), config, output)
    if format == "hf":
        return write_hf(to_hf_state_dict(model), config, output)
    raise ValueError(f"unknown export format {format!r}; use cpm-live or hf")
