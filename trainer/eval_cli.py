"""`bee eval CHECKPOINT --data DATA --vocab VOCAB`: task accuracy of a model (trainer/evaluation.py).

DATA is a JSONL file of structured samples (task: the file's name), a binary dataset folder
(task: the folder's name), or a mixture manifest (task: each entry's `task_name`; its
transforms are applied as in training, no in-context samples). Repeatable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from trainer.eval_data import eval_samples
from trainer.evaluation import EvalReport


def print_report(report: EvalReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="evaluation")
    for column in EvalReport.COLUMNS:
        table.add_column(column, justify="left" if column == "task" else "right")
    for row in report.rows():
        table.add_row(*row)
    console = Console(stderr=False)
    console.print(table)
    data = report.to_json()
    rate = data["samples_per_second"]
    console.print(f"{data['samples']} samples in {data['seconds']:.1f}s"
                  + (f" ({rate:.2f} samples/s)" if rate else "") + "; ★ the better accuracy of a task", highlight=False)


def evaluate_checkpoint(checkpoint: str, data: list[str], vocab: str, *, model_config: str | None = None,
                        delta: str | None = None, task: str | None = None, limit: int | None = None,
                        score: str = "text", normalize: bool = False, generate: bool = True, beam_size: int = 3,
                        max_new_tokens: int = 32, max_depth: int = 16, dtype: str | None = None,
                        device: str = "cpu") -> EvalReport:
    """Load a model and score every sample of `data`: what `bee eval` and the evaluate flow run."""
    from tokenization.tokenizer import CPMBeeTokenizer
    from trainer.evaluation import Evaluator
    from trainer.model_io import load_model

    model, _ = load_model(checkpoint, model_config, delta, dtype, device)
    evaluator = Evaluator(model, CPMBeeTokenizer(vocab), score=score, normalize=normalize, generate=generate,
                          beam_size=beam_size, max_new_tokens=max_new_tokens, max_depth=max_depth, device=device)
    report = EvalReport(settings={"checkpoint": checkpoint, "data": data, "score": score, "normalize": normalize,
                                  "generation": generate, "beam_size": beam_size, "max_new_tokens": max_new_tokens})
    for item in data:
        evaluator.evaluate(eval_samples(item, task, limit), report)
    return report


def eval_command(
    checkpoint: Annotated[str, typer.Argument(help="A CPM-Bee .pt, an HF-port folder or state dict, or a training checkpoint.")],
    data: Annotated[list[str], typer.Option("--data", help="JSONL of structured samples, a dataset folder, or a manifest (repeatable).")],
    vocab: Annotated[Path, typer.Option("--vocab", help="The model's vocabulary (CPM-Bee's bee.txt or the run's vocab).", exists=True, dir_okay=False)],
    model_config: Annotated[Optional[str], typer.Option("--model-config", help="Preset or config file; default: found beside the checkpoint.")] = None,
    delta: Annotated[Optional[str], typer.Option("--delta", help="A LoRA delta merged into the weights.")] = None,
    task: Annotated[Optional[str], typer.Option("--task", help="Task name for every sample (default: from each --data).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="At most this many samples per task.")] = None,
    score: Annotated[str, typer.Option("--score", help="Option perplexity of each option's 'text' or its 'label' token (<option_N>).")] = "text",
    normalize: Annotated[bool, typer.Option("--normalize", help="Option perplexity per answer token instead of summed.")] = False,
    generate: Annotated[bool, typer.Option("--generate/--no-generate", help="Also score by beam-search generation.")] = True,
    beam_size: Annotated[int, typer.Option("--beam-size", min=1)] = 3,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Longest generated answer.")] = 32,
    max_depth: Annotated[int, typer.Option("--max-depth", min=2, help="Segment depth buckets (the training run's data.max_depth).")] = 16,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="fp32 (default), bf16 or fp16.")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1 ...")] = "cpu",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON here.")] = None,
    markdown_out: Annotated[Optional[Path], typer.Option("--markdown", help="Write the table as Markdown here.")] = None,
) -> None:
    """Accuracy by option perplexity and by generation (options), exact match and character F1 (free answers), per task."""
    from schemas import SchemaError

    try:
        report = evaluate_checkpoint(checkpoint, data, str(vocab), model_config=model_config, delta=delta, task=task,
                                     limit=limit, score=score, normalize=normalize, generate=generate,
                                     beam_size=beam_size, max_new_tokens=max_new_tokens, max_depth=max_depth,
                                     dtype=dtype, device=device)
    except (FileNotFoundError, ValueError, SchemaError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    print_report(report)
    if json_out is not None:
        _write(json_out, json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n")
    if markdown_out is not None:
        _write(markdown_out, report.markdown())


def _write(path: Path, text: str) -> None:
    from corpus.atomic_file import write_text_atomically

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, text)
