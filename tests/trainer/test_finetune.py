"""trainer.finetune: LoRA from a pretrained state dict under 2-process ZeRO-3 on CPU (two launches).

The run must start from the pretrained weights, train only the LoRA tensors, keep only them
in its checkpoints, end with `delta.pt` holding the delta alone, and, trained for `epochs: 1`,
stop at the step where the loaders have read one pass over the data.

With task evaluation, each evaluation scores the eval manifest's samples shared out over the
two ranks (an odd number each, so one rank pads with dummy calls) and logs per-task accuracy
equal to what `bee eval` finds in one process; early stop on accuracy ends the run.
"""

from __future__ import annotations

import pytest
import torch

from pretrain_fixtures import launch, write_dataset, write_manifest, write_option_dataset, write_run
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


@pytest.mark.integration
def test_task_evaluation_logs_per_task_accuracy_each_interval_and_early_stop_watches_it(tmp_path) -> None:
    from trainer.eval_cli import evaluate_checkpoint

    torch.manual_seed(3)
    pretrained = tmp_path / "pretrained.pt"
    torch.save(to_hf_state_dict(CPMBee(preset("tiny"))), pretrained)
    train = write_manifest(tmp_path / "pick.json", {"pick": ("pick", write_option_dataset(tmp_path / "data" / "pick", 40, seed=5))})
    held_out = write_manifest(tmp_path / "held_out.json", {
        "pick_eval": ("pick", write_option_dataset(tmp_path / "data" / "pick_eval", 60, seed=6)),
        "qa_eval": ("qa", write_dataset(tmp_path / "data" / "qa_eval", 60, seed=7)),  # free-text answers
    })  # fmt: skip
    config = write_run(
        tmp_path, finetune={"init_from": str(pretrained), "method": "lora", "lora_rank": 4}, max_steps=10,
        data__manifest=str(train), data__eval_manifest=str(held_out), data__max_length=128, checkpoint__interval=100,
        eval={"interval": 1, "batches": 1, "samples": 7, "generation": True, "watch": "accuracy", "patience": 2,
              "min_delta": 1.0},  # no accuracy beats the first by 1.0: the run stops at the third evaluation
    )  # fmt: skip
    with open(tmp_path / "vocab.txt", "a", encoding="utf-8") as vocab:
        vocab.write("<option>\n")  # the family token of <option_N> (a new last id: the others keep theirs)
    result = launch(config, entry="finetune")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    log = tmp_path / "ckpt" / "logs" / "tiny.metrics.jsonl"
    evals = read_metrics(log, "eval")
    assert [r["step"] for r in evals] == [1, 2, 3] and [r["step"] for r in read_metrics(log)] == [1, 2, 3]
    for record in evals:
        pick, qa = record["tasks"]["pick"], record["tasks"]["qa"]
        assert pick["option_samples"] == 7 and qa["free_samples"] == 7  # every sample once, over both ranks
        assert pick["accuracy_perplexity"] is not None and pick["accuracy_generation"] is not None
        assert qa["exact_match"] is not None and qa["char_f1"] is not None
        assert record["watch"] == "accuracy" and record["value"] == record["overall"]["accuracy"]
    assert evals[0]["best"] == evals[0]["value"] and evals[2]["evals_without_improvement"] == 2
    (stop,) = read_metrics(log, "early_stop")
    assert stop["step"] == 3 and stop["watch"] == "accuracy"
    assert "early stop at step 3: accuracy did not improve in 2 evaluations" in result.stdout
    assert "| pick: 7 samples | acc (option ppl)" in result.stdout

    # the last evaluation scored the exported model: one process, bee eval's code, the same scores
    report = evaluate_checkpoint(str(pretrained), [str(held_out)], str(tmp_path / "vocab.txt"), model_config="tiny",
                                 delta=str(tmp_path / "ckpt" / DELTA_FILE), limit=7, max_depth=8)  # fmt: skip
    alone = report.to_json()["tasks"]
    for task, scores in evals[-1]["tasks"].items():
        assert scores == pytest.approx(alone[task]), task


def test_init_from_a_missing_path_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="finetune.init_from: .*nothing.pt does not exist"):
        load_pretrained_state(str(tmp_path / "nothing.pt"))


def test_epochs_are_counted_as_weight_times_nlines(tmp_path) -> None:
    from trainer.pretrain import epoch_samples

    a, b = write_dataset(tmp_path / "a", 10, seed=1), write_dataset(tmp_path / "b", 6, seed=2)
    manifest = write_manifest(tmp_path / "m.json", {"a": ("t", a), "b": ("t", b)})
    assert epoch_samples(str(manifest)) == 16
