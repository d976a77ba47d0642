"""trainer.finetune: LoRA from a pretrained state dict under 2-process ZeRO-3 on CPU (one launch).

The run must start from the pretrained weights, train only the LoRA tensors, keep only them
in its checkpoints, end with `delta.pt` holding the delta alone, and, trained for `epochs: 1`,
stop at the step where the loaders have read one pass over the data.
"""

from __future__ import annotations

import pytest
import torch

from pretrain_fixtures import launch, write_dataset, write_manifest, write_run
from schemas import preset
from trainer.finetune import DELTA_FILE, load_pretrained_state
from trainer.metrics import read_metrics
from trainer.model import CPMBee
from trainer.weight_names import to_hf_state_dict


@pytest.mark.integration
def test_lora_finetune_saves_only_the_delta(tmp_path) -> None:
    torch.manual_seed(3)
    pretrained = tmp_path / "pretrained.pt"
    torch.save(to_hf_state_dict(CPMBee(preset("tiny"))), pretrained)  # the HF port's names load too
    small = write_dataset(tmp_path / "data" / "small", 40, seed=5)  # 2 blocks (one per rank); one epoch: a few steps
    manifest = write_manifest(tmp_path / "small.json", {"small": ("qa_task", small)})
    config = write_run(
        tmp_path, finetune={"init_from": str(pretrained), "method": "lora", "lora_rank": 4},
        max_steps=None, epochs=1, schedule__decay_steps=10, data__manifest=str(manifest), eval__interval=100,
    )  # fmt: skip
    result = launch(config, entry="finetune")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    steps = read_metrics(tmp_path / "ckpt" / "logs" / "tiny.metrics.jsonl")
    last = steps[-1]["step"]
    assert [r["step"] for r in steps] == list(range(1, last + 1)) and all(r["applied"] for r in steps)
    # epochs: 1 = weight x nlines = 40 samples read over both ranks; the run stops at the step that completes them
    assert last >= 2 and steps[-2]["samples_seen"] < 40 <= steps[-1]["samples_seen"]
    assert "training to 1 epochs of 40 samples" in result.stdout
    delta = torch.load(tmp_path / "ckpt" / DELTA_FILE)
    assert delta["rank"] == 4 and len(delta["lora"]) == 2 * 7 * 2  # layers x projections x (A, B)
    assert all(name.endswith(("lora_A", "lora_B")) for name in delta["lora"])
    assert any(value.abs().sum() > 0 for name, value in delta["lora"].items() if name.endswith("lora_B"))
    # the checkpoint holds the delta and its optimizer state, not the frozen base weights
    saved = sum(p.stat().st_size for p in (tmp_path / "ckpt" / f"step-{last:08d}").iterdir())
    assert saved < pretrained.stat().st_size


def test_init_from_a_missing_path_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="finetune.init_from: .*nothing.pt does not exist"):
        load_pretrained_state(str(tmp_path / "nothing.pt"))


def test_epochs_are_counted_as_weight_times_nlines(tmp_path) -> None:
    from trainer.pretrain import epoch_samples

    a, b = write_dataset(tmp_path / "a", 10, seed=1), write_dataset(tmp_path / "b", 6, seed=2)
    manifest = write_manifest(tmp_path / "m.json", {"a": ("t", a), "b": ("t", b)})
    assert epoch_samples(str(manifest)) == 16
