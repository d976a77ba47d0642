"""The pretrain flow's artifact and its notice before DeepSpeed compiles an op."""

from __future__ import annotations

from pathlib import Path

from flows.pretrain import loss_sparkline, pretrain_summary_markdown
from trainer.launch import SHM_COMM_OP, compile_notices, ops_to_compile


def _records(losses: list[float]) -> list[dict]:
    return [{"step": i + 1, "loss": loss, "lr": 1e-3, "tokens": 512, "tokens_per_second": 1000.0 + i}
            for i, loss in enumerate(losses)]


def test_loss_curve_falls_as_the_loss_does():
    curve = loss_sparkline([8.0, 7.0, 6.0, 5.0, 4.0])
    assert curve[0] == "█" and curve[-1] == "▁" and len(curve) == 5
    assert len(loss_sparkline([1.0] * 500, width=60)) <= 60


def test_artifact_has_the_loss_curve_throughput_and_checkpoint():
    markdown = pretrain_summary_markdown("demo", _records([6.0, 5.5, 5.0, 4.2]), "/ckpt/step-00000004",
                                         Path("/logs/demo.metrics.jsonl"))
    assert "| 4 | 6.0000 | 4.2000 | 4.2000 | 1,002 | 2,048 | `/ckpt/step-00000004` |" in markdown
    assert "loss `" in markdown and "tokens/s" in markdown
    assert "No training step" in pretrain_summary_markdown("demo", [], None, Path("m.jsonl"))


def test_the_shm_op_compile_is_announced_until_it_is_built(tmp_path):
    env = {"DS_ACCELERATOR": "cpu", "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    assert ops_to_compile(env) == [SHM_COMM_OP]
    assert str(tmp_path) in compile_notices(env)[0]
    (tmp_path / SHM_COMM_OP).mkdir()
    (tmp_path / SHM_COMM_OP / f"{SHM_COMM_OP}.so").write_bytes(b"")
    assert ops_to_compile(env) == [] and compile_notices(env) == []
    assert ops_to_compile({"TORCH_EXTENSIONS_DIR": str(tmp_path / "gpu")}) == []  # only the CPU accelerator uses it
