"""`bee demo` / `make demo`: the whole path on the embedded default, with nothing but Python.

sample corpus (corpus/sample/raw) → corpus-build flow (Beam DirectRunner) → datasets, manifest
and reports → vocabulary learned from the built datasets → retokenize flow → a tiny CPM-Bee
trained a few dozen steps by the pretrain flow (deepspeed launcher, CPU, 2 processes) → a
summary of where everything is. Prefect runs without a server (ephemeral mode).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from rich.console import Console

SAMPLE_RAW = Path(__file__).resolve().parents[1] / "corpus" / "sample" / "raw"

console = Console()
DEMO_MAX_DEPTH = 8  # segment-tree depth buckets of the demo run; its token shards are made for it


SAMPLE_BUILD_PLAN = SAMPLE_RAW.parent / "build.yaml"
SAMPLE_OUTPUT = "sample-output"  # where the shipped plan writes, relative to the repository root


def sample_build_plan(output: Path) -> dict:
    """The shipped plan corpus/sample/build.yaml (plain text for language modelling, structured
    QA) with its inputs made absolute and `sample-output/` replaced by `output`."""
    repo_root = SAMPLE_RAW.parents[2]

    def rebase(path: str) -> str:
        relative = Path(path)
        if relative.parts[0] == SAMPLE_OUTPUT:
            return str(output / relative.relative_to(SAMPLE_OUTPUT))
        return str(repo_root / relative)

    plan = yaml.safe_load(SAMPLE_BUILD_PLAN.read_text(encoding="utf-8"))
    for dataset in plan["datasets"]:
        dataset["input"] = [rebase(path) for path in dataset["input"]]
        dataset["output"] = rebase(dataset["output"])
        dataset["manifest"] = rebase(dataset["manifest"])
    return plan


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def sample_run_config(output: Path, manifest: Path, vocab: Path, steps: int) -> dict:
    """A tiny CPM-Bee (schemas preset `tiny`) on the demo manifest, fp32 ZeRO-3 on CPU."""
    return {
        "name": "demo",
        "model": {"preset": "tiny"},
        "data": {"manifest": str(manifest), "vocab": str(vocab), "batch_size": 4, "max_length": 128,
                 "max_depth": DEMO_MAX_DEPTH, "prefetch": 4},
        "optimizer": {"lr": 3e-3},
        "schedule": {"kind": "cosine", "warmup_steps": max(1, steps // 10)},
        "precision": "fp32",
        "checkpoint": {"dir": str(output / "checkpoints"), "interval": max(1, steps // 2), "keep_last": 2},
        "max_steps": steps,
        "log_interval": max(1, steps // 20),
        "seed": 1234,
    }


def train_tiny_model(output: Path, manifest: Path, vocab: Path, steps: int, processes: int) -> dict:
    from flows.pretrain import pretrain
    from trainer.checkpoint import LATEST_FILE

    run_config = write_yaml(output / "run.yaml", sample_run_config(output, manifest, vocab, steps))
    checkpoints = output / "checkpoints"
    resume = (checkpoints / LATEST_FILE).exists()
    return pretrain(run_config=str(run_config), num_gpus=processes, resume=resume, cpu=True)


def _step(number: int, total: int, title: str) -> None:
    console.rule(f"[bold]step {number}/{total}: {title}")


def run_demo(output: Path, steps: int, processes: int) -> None:
    """Run every step of the embedded default into `output` (created; reruns reuse what is fresh)."""
    # Imported here so `bee --help` stays fast.
    from flows.corpus_build import corpus_build
    from flows.retokenize import retokenize
    from tokenization.vocab_build import VocabBuildConfig, build_vocab_file

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    output = output.resolve()
    total = 4

    _step(1, total, "corpus build (Prefect flow `corpus-build`, Beam DirectRunner)")
    build_config = write_yaml(output / "build.yaml", sample_build_plan(output))
    builds = corpus_build(build_config=str(build_config), runner_options=["--runner=DirectRunner"])
    manifest = output / "datasets.json"

    _step(2, total, "vocabulary learned from the built datasets")
    vocab = output / "vocab.txt"
    vocab_report = build_vocab_file([b["dataset_path"] for b in builds], vocab, VocabBuildConfig(size=4096, min_char_count=1))
    console.print(f"{vocab}: {vocab_report.size} tokens ({vocab_report.nchars} characters, "
                  f"{vocab_report.npieces} learned pieces)")

    _step(3, total, "token shards (Prefect flow `retokenize`)")
    retokenized = retokenize(manifest=str(manifest), vocab=str(vocab), max_depth=DEMO_MAX_DEPTH)

    _step(4, total, f"pretraining a tiny CPM-Bee for {steps} steps (Prefect flow `pretrain`, deepspeed, CPU)")
    trained = train_tiny_model(output, manifest, vocab, steps, processes)

    console.rule("[bold]demo finished: where everything is")
    for build in builds:
        dataset_dir = Path(build["dataset_path"])
        _show(f"dataset {build['dataset']}: {build['written']} kept, {build['rejected']} rejected", dataset_dir,
              f"bee dataset inspect {dataset_dir}")
        _show("  its build report (counts, drops by filter, plots)", dataset_dir.parent / "report.md")
        _show("  its rejects, with reasons (Parquet)", dataset_dir.parent / "rejects")
    _show("mixture manifest", manifest, f"bee manifest show {manifest}")
    _show(f"vocabulary: {vocab_report.size} tokens", vocab)
    _show(f"token shards: {retokenized['ntokens']} tokens", manifest, f"bee manifest show {manifest}")
    _show(f"training: loss {trained['first_loss']:.3f} → {trained['last_loss']:.3f} in {trained['steps']} steps",
          trained["checkpoint_dir"])
    _show("  training metrics, one JSON object per step", trained["metrics"])
    tensorboard = Path(trained["metrics"]).parent / "tensorboard"
    _show("  TensorBoard logs (loss per task, lr, grad norm, tokens/s)", tensorboard, f"tensorboard --logdir {tensorboard}")


def _show(what: str, where: str | Path, command: str | None = None) -> None:
    console.print(f"[bold]{what}[/bold]\n    {where}" + (f"\n    $ {command}" if command else ""), soft_wrap=True)
