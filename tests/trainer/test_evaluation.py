"""Task evaluation: option perplexity (text and label scoring), free-answer metrics, reports."""

from pathlib import Path

import pytest
import torch

from schemas.model_config import preset
from tokenization.tokenizer import CPMBeeTokenizer
from trainer.engine import model_inputs
from trainer.evaluation import EvalReport, Evaluator, TaskScore, answer_losses, char_f1, option_candidates
from trainer.incontext import build_instance
from trainer.metrics import mean_loss, token_losses
from trainer.model import CPMBee
from trainer.packing import pack_rows

TINY_VOCAB = Path(__file__).parent / "assets" / "tiny_vocab.txt"
WORDS = ["red", "blue", "green", "gold", "black", "white"]


def sample(i: int) -> dict:
    options = {f"<option_{k}>": WORDS[(i + k) % len(WORDS)] for k in range(3)}
    return {"input": f"case {i}: pick the colour", "options": options, "question": "which?",
            "<ans>": f"<option_{(i * 2) % 3}>"}


@pytest.fixture(scope="module")
def tokenizer():
    return CPMBeeTokenizer(TINY_VOCAB)


def model() -> CPMBee:
    torch.manual_seed(0)
    return CPMBee(preset("tiny")).eval()


def test_option_candidates_and_char_f1():
    assert option_candidates(sample(1)) == sample(1)["options"]
    assert option_candidates({"input": "x", "<ans>": "free text"}) is None
    assert option_candidates({"options": {"<option_0>": "a"}, "<ans>": "<option_7>"}) is None
    assert char_f1("残灯灭又明", "残灯灭又明") == 1.0 and char_f1("abc", "xyz") == 0.0
    assert char_f1("ab c", "abd") == pytest.approx(2 / 3)


def test_batched_answer_losses_equal_one_sample_at_a_time(tokenizer):
    net = model()
    samples = [sample(i) | {"input": "x" * (3 + 7 * i)} for i in range(4)]  # different lengths: padding in batches
    batched = answer_losses(net, tokenizer, samples, max_length=256, max_depth=8, device="cpu", batch_size=4)
    single = [answer_losses(net, tokenizer, [s], max_length=256, max_depth=8, device="cpu")[0] for s in samples]
    for (a, n), (b, m) in zip(batched, single):
        assert n == m > 0 and a == pytest.approx(b, rel=1e-5)
    assert answer_losses(net, tokenizer, [sample(0) | {"input": "y" * 400}], max_length=64, max_depth=8, device="cpu") == [
        (float("inf"), 0)]  # too long: never the chosen option


def _overfit(net: CPMBee, tokenizer, samples: list[dict], steps: int = 100) -> None:
    rows = [[build_instance(tokenizer, s, "t", max_length=128, max_depth=8)] for s in samples]
    batch = pack_rows(rows, max(len(r[0]) for r in rows), tokenizer.vocab_size, tokenizer.bos_id, tokenizer.eos_id)
    inputs, target = model_inputs(batch, torch.device("cpu")), torch.from_numpy(batch["target"])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(steps):
        logits, _ = net(**inputs)
        loss = mean_loss(*token_losses(logits, target))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    net.eval()


@pytest.mark.parametrize("score", ["label", "text"])
def test_a_model_trained_on_the_answers_scores_them_right_by_perplexity(tokenizer, score):
    samples = [sample(i) for i in range(4)]
    net = model()
    before = Evaluator(net, tokenizer, score=score, generate=False, max_depth=8).evaluate(("colours", s) for s in samples)
    train_on = samples if score == "label" else [s | {"<ans>": s["options"][s["<ans>"]]} for s in samples]
    _overfit(net, tokenizer, train_on)
    report = Evaluator(net, tokenizer, score=score, generate=False, max_depth=8).evaluate(("colours", s) for s in samples)
    result = report.to_json()["tasks"]["colours"]
    assert result["option_samples"] == 4 and result["accuracy_perplexity"] == 1.0
    assert before.to_json()["tasks"]["colours"]["accuracy_perplexity"] < 1.0  # not by luck
    assert report.examples[0]["by_perplexity"] == samples[0]["<ans>"]


def test_report_marks_the_better_accuracy_and_renders_markdown():
    report = EvalReport(settings={"score": "text"})
    report.tasks["ccpm"] = TaskScore(samples=4, option_samples=4, perplexity_correct=3, generation_correct=1,
                                      generation_samples=4)
    data = report.to_json()["tasks"]["ccpm"]
    assert data["accuracy_perplexity"] == 0.75 and data["better"] == "perplexity"
    assert "| ccpm | 4 | 75.00% ★ | 25.00% | — | — |" in report.markdown()


def test_bee_eval_scores_a_saved_checkpoint_on_jsonl_and_a_dataset(tokenizer, tmp_path):
    import json

    from typer.testing import CliRunner

    from corpus.dataset import build_dataset
    from flows.cli import app
    from trainer.weight_names import to_cpm_live_state_dict

    samples = [sample(i) for i in range(4)]
    net = model()
    _overfit(net, tokenizer, samples)
    torch.save(to_cpm_live_state_dict(net), tmp_path / "model.pt")
    (tmp_path / "model_config.json").write_text(net.config.model_dump_json())
    (tmp_path / "colours.jsonl").write_text("\n".join(json.dumps(s) for s in samples) + "\n", encoding="utf-8")
    with build_dataset(tmp_path / "held_out", "part-0000") as writer:
        for s in samples[:2]:
            writer.write(s)
    args = ["eval", str(tmp_path / "model.pt"), "--data", str(tmp_path / "colours.jsonl"), "--data",
            str(tmp_path / "held_out"), "--vocab", str(TINY_VOCAB), "--score", "label", "--max-depth", "8",
            "--beam-size", "2", "--max-new-tokens", "3", "--json", str(tmp_path / "r.json"),
            "--markdown", str(tmp_path / "r.md")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["tasks"]["colours"]["option_samples"] == 4 and report["tasks"]["held_out"]["option_samples"] == 2
    assert report["tasks"]["colours"]["accuracy_perplexity"] == 1.0
    assert report["tasks"]["colours"]["accuracy_generation"] is not None and report["samples_per_second"] > 0
    assert "| colours | 4 |" in (tmp_path / "r.md").read_text(encoding="utf-8") and "colours" in result.stdout
    missing = CliRunner().invoke(app, ["eval", str(tmp_path / "model.pt"), "--data", str(tmp_path / "none.jsonl"),
                                       "--vocab", str(TINY_VOCAB)])
    assert missing.exit_code == 2 and "none.jsonl" in missing.output
