"""trainer.finetune: LoRA from a pretrained state dict under 2-process ZeRO-3 on CPU (one launch).

The run must start from the pretrained weights, train only the LoRA tensors, keep only them
in its checkpoints, and end with `delta.pt` holding the delta alone.
"""

from __future__ import annotations

import pytest
import torch

from pretrain_fixtures import launch, write_run
from schemas import preset
from trainer.finetune import DELTA_FILE, load_pretrained_state
from trainer.metrics import read_metrics
from trainer.model import CPMBee, to_hf_state_dict


@pytest.mark.integration
def test_lora_finetune_saves_only_the_delta(tmp_path) -> None:
    torch.manual_seed(3)
    pretrained = tmp_path / "pretrained.pt"
    torch.save(to_hf_state_dict(CPMBee(preset("tiny"))), pretrained)  # the HF port's names load too
    config = write_run(
        tmp_path, finetune={"init_from": str(pretrained), "method": "lora", "lora_rank": 4},
        max_steps=2, eval__interval=100,
    )  # fmt: skip
    result = launch(config, entry="finetune")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    steps = read_metrics(tmp_path / "ckpt" / "logs" / "tiny.metrics.jsonl")
    assert [r["step"] for r in steps] == [1, 2] and all(r["applied"] for r in steps)
    delta = torch.load(tmp_path / "ckpt" / DELTA_FILE)
    assert delta["rank"] == 4 and len(delta["lora"]) == 2 * 7 * 2  # layers x projections x (A, B)
    assert all(name.endswith(("lora_A", "lora_B")) for name in delta["lora"])
    assert any(value.abs().sum() > 0 for name, value in delta["lora"].items() if name.endswith("lora_B"))
    # the checkpoint holds the delta and its optimizer state, not the frozen base weights
    saved = sum(p.stat().st_size for p in (tmp_path / "ckpt" / "step-00000002").iterdir())
    assert saved < pretrained.stat().st_size


def test_init_from_a_missing_path_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="finetune.init_from: .*nothing.pt does not exist"):
        load_pretrained_state(str(tmp_path / "nothing.pt"))
