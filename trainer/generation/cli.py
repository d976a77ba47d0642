"""`bee generate`: fill the `<ans>` of structured samples with a trained or published model.

    bee generate CHECKPOINT --input samples.jsonl [--output out.jsonl] [--beam-size 3] [--max-length 100]
    bee generate CHECKPOINT --input samples.jsonl --sample --temperature 0.8 --top-p 0.9 --seed 1
    bee generate CHECKPOINT --delta delta.pt --model-config cpm-bee-10b --interactive

CHECKPOINT is what `trainer.model_io.load_model` reads (a CPM-Bee `.pt`, an HF port state dict,
one of this trainer's checkpoints); the input is JSON lines of samples (`{"input": ..., "<ans>": ""}`).
Output: the same lines with the answers filled (stdout without --output; written atomically).
A line that is not a JSON object or cannot be converted is a reject: counted, written with
its line number and reason to `--rejects` (default OUTPUT.rejects.jsonl), and skipped.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

DEFAULT_VOCAB = "bee.txt"  # CPM-Bee's vocabulary; --vocab names the file


def _read_samples(path: Path) -> tuple[list[tuple[int, Any]], list[dict[str, Any]]]:
    samples, rejects = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as error:
                rejects.append({"line": number, "reason": f"not JSON: {error}", "text": line.rstrip("\n")[:200]})
                continue
            samples.append((number, sample))
    return samples, rejects


def _decode_batch(generator, samples: list[tuple[int, Any]], options: dict[str, Any], rejects: list[dict[str, Any]]):
    """Generate for a batch; a sample the converter refuses becomes a reject (the rest go on)."""
    from tokenization.convert import SampleError

    good = []
    for number, sample in samples:
        try:
            generator.prepare([sample])
            good.append((number, sample))
        except SampleError as error:
            rejects.append({"line": number, "reason": str(error).replace("sample 0", f"line {number}", 1)})
    if not good:
        return []
    filled = generator.generate([sample for _, sample in good], **options)
    return list(zip((number for number, _ in good), filled))


def generate_command(
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint: CPM-Bee .pt, HF port weights, or a checkpoint of this trainer.")],
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="JSON lines of samples with an empty <ans>.", exists=True, dir_okay=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Where the filled samples go (default stdout).")] = None,
    rejects_path: Annotated[Optional[Path], typer.Option("--rejects", help="Rejected lines (default OUTPUT.rejects.jsonl, or stderr).")] = None,
    model_config: Annotated[Optional[str], typer.Option("--model-config", help="Preset name or config file (default: beside the checkpoint).")] = None,
    delta: Annotated[Optional[str], typer.Option("--delta", help="LoRA delta (delta.pt of a LoRA fine-tune) merged on load.")] = None,
    vocab: Annotated[Path, typer.Option("--vocab", help="Vocabulary file (CPM-Bee's bee.txt).", dir_okay=False)] = Path(DEFAULT_VOCAB),
    beam_size: Annotated[int, typer.Option("--beam-size", min=1, help="Beams (beam search).")] = 3,
    max_length: Annotated[int, typer.Option("--max-length", min=1, help="Most tokens generated per sample.")] = 100,
    repetition_penalty: Annotated[float, typer.Option("--repetition-penalty", min=1.0, help="CTRL repetition penalty (1.0: none).")] = 1.0,
    repetition_window: Annotated[Optional[int], typer.Option("--repetition-window", min=1, help="Penalise only the last N generated tokens.")] = None,
    sample: Annotated[bool, typer.Option("--sample", help="Sample instead of beam search.")] = False,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature (> 0).")] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", min=0, help="Sample among the k most likely tokens (0: all).")] = 0,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus: smallest set reaching this probability (1.0: all).")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sampling draws.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Samples decoded together.")] = 8,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, ...")] = "cpu",
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="fp32 (default), bf16 or fp16 (GPU).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute every step instead of the key/value cache (slow; for checks).")] = False,
    interactive: Annotated[bool, typer.Option("--interactive", help="Prompt loop: a JSON sample or plain text per line.")] = False,
) -> None:
    """Fill the <ans> of each sample by beam search (CPM-Bee's CPMBeeBeamSearch) or by sampling."""
    if input is None and not interactive:
        typer.echo("error: give --input samples.jsonl, or --interactive for a prompt loop", err=True)
        raise typer.Exit(2)
    if not vocab.is_file():
        typer.echo(f"error: vocabulary {vocab} not found; pass --vocab path/to/bee.txt", err=True)
        raise typer.Exit(2)
    from tokenization.tokenizer import CPMBeeTokenizer
    from trainer.generation import CPMBeeBeamSearch, CPMBeeSampling
    from trainer.model_io import load_model

    try:
        model, config = load_model(checkpoint, model_config, delta, dtype=dtype, device=device)
    except (FileNotFoundError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    tokenizer = CPMBeeTokenizer(vocab)
    if tokenizer.vocab_size > config.vocab_size:
        typer.echo(f"error: vocabulary {vocab} has {tokenizer.vocab_size} tokens, the model only {config.vocab_size}", err=True)
        raise typer.Exit(2)
    if sample:
        generator = CPMBeeSampling(model, tokenizer)
        options = dict(max_length=max_length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                       repetition_penalty=repetition_penalty, repetition_window=repetition_window)  # fmt: skip
    else:
        generator = CPMBeeBeamSearch(model, tokenizer)
        options = dict(beam_size=beam_size, max_length=max_length, repetition_penalty=repetition_penalty,
                       repetition_window=repetition_window)  # fmt: skip
    options["use_cache"] = not no_cache
    if interactive:
        _interactive(generator, options)
        return

    samples, rejects = _read_samples(input)
    start, lines = time.perf_counter(), []
    for i in range(0, len(samples), batch_size):
        for number, filled in _decode_batch(generator, samples[i : i + batch_size], options, rejects):
            lines.append(json.dumps(filled, ensure_ascii=False))
    seconds = time.perf_counter() - start
    text = "".join(line + "\n" for line in lines)
    if output is None:
        sys.stdout.write(text)
    else:
        from corpus.atomic_file import write_text_atomically

        write_text_atomically(output, text)
    _write_rejects(rejects, rejects_path or (output.with_suffix(".rejects.jsonl") if output else None))
    typer.echo(f"generated {len(lines)} of {len(samples) + sum(1 for r in rejects if r['reason'].startswith('not JSON'))} "
               f"samples ({len(rejects)} rejected) in {seconds:.1f} s", err=True)  # fmt: skip


def _write_rejects(rejects: list[dict[str, Any]], path: Path | None) -> None:
    if not rejects:
        return
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects)
    if path is None:
        sys.stderr.write(text)
        return
    from corpus.atomic_file import write_text_atomically

    write_text_atomically(path, text)
    typer.echo(f"{len(rejects)} rejected lines written to {path}", err=True)


def _interactive(generator, options: dict[str, Any]) -> None:
    from tokenization.convert import SampleError

    typer.echo('one sample per line: JSON ({"input": ..., "<ans>": ""}) or plain text; an empty line or EOF ends', err=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            break
        try:
            sample = json.loads(line) if line.startswith("{") else {"input": line, "<ans>": ""}
            filled = generator.generate([sample], **options)[0]
        except (json.JSONDecodeError, SampleError) as error:
            typer.echo(f"error: {error}", err=True)
            continue
        typer.echo(json.dumps(filled["<ans>"], ensure_ascii=False))
