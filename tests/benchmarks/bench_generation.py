"""Generation speed: tokens/s of beam search (beam 3) and of sampling, with the key/value cache
and without, beside CPM-Bee's reference `CPMBeeBeamSearch` on the same weights and inputs in the
same run (CPU, float32). Also checks that our beam search's tokens equal the reference's.

    .venv/bin/python tests/benchmarks/bench_generation.py [--shape tiny|realistic] [--prompts short|few-shot]
        [--batch 6] [--max-length 24] [--threads 1] [--repeats 2] [--reference DIR]

Shapes: `tiny` is 2 layers of dim 128 on the real 86 583-token vocabulary (the equality
harness's model); `realistic` is the cpm-bee-1b preset's shape (dim 4096, 20 heads of 64,
dim_ff 1024, its pruning pattern) cut to `--layers` layers. Prompts: `short` are the harness's
samples (10 to 60 tokens), `few-shot` CCPM questions each after three solved ones in its
input text (270 to 400 tokens), what a few-shot evaluation feeds.

Tokens are the answer tokens of the returned hypotheses (`</s>` included); time is CPU seconds
of this process (`time.process_time`, conversion and batching included), best of `--repeats`
rounds, every decoder once per round in turn, so that a busy machine slows all of them alike.
Our decoders without the cache recompute every hypothesis's whole sequence at each step (the
correctness reference for the cache, not a way to run): with the realistic shape they are
left out unless `--no-cache` is given. The reference part is skipped when its scratch checkout
is absent (see compare_generation_reference.py).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_generation_reference import (  # noqa: E402
    DEFAULT_REFERENCE,
    VOCAB,
    build_models,
    few_shot_samples,
    load_reference,
    model_config,
    realistic_config,
    samples,
)  # fmt: skip

from tokenization.tokenizer import CPMBeeTokenizer  # noqa: E402
from trainer.generation import CPMBeeBeamSearch, CPMBeeSampling  # noqa: E402
from trainer.generation.prompt import prepare  # noqa: E402
from trainer.model import CPMBee  # noqa: E402

Tokens = list[list[tuple[int, int]]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--shape", choices=("tiny", "realistic"), default="tiny")
    parser.add_argument("--layers", type=int, default=8, help="layers of the realistic shape")
    parser.add_argument("--prompts", choices=("short", "few-shot"), default="short")
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--max-length", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU seconds are the work done)")
    parser.add_argument("--no-cache", action="store_true", help="time the no-cache decoders with the realistic shape too")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    tokenizer = CPMBeeTokenizer(VOCAB)
    config = model_config() if args.shape == "tiny" else realistic_config(args.layers)
    have_reference = (args.reference / "cpm_live" / "generation" / "bee.py").is_file()
    reference = load_reference(args.reference) if have_reference else None
    if reference:
        ours, ref = build_models(config, reference, tokenizer.eos_id)
    else:
        torch.manual_seed(0)
        ours, ref = CPMBee(config).eval(), None
    data = samples(args.batch) if args.prompts == "short" else few_shot_samples(args.batch)
    beam = dict(beam_size=3, max_length=args.max_length, repetition_penalty=1.0, repetition_window=None)
    sampling = dict(max_length=args.max_length, top_p=0.9, seed=0)

    decoders: dict[str, Callable[[], Tokens]] = {}
    if ref is not None:
        ref_gen = reference["beam_search"](ref, reference["tokenizer"])

        def reference_run() -> Tokens:
            inputs, info = ref_gen._process_list(copy.deepcopy(data))
            with torch.inference_mode():
                return [[tuple(map(int, t)) for t in s] for s in ref_gen._decode(inputs, info, **beam)]

        decoders["reference CPMBeeBeamSearch, beam 3"] = reference_run
    with_cache = (True, False) if args.shape == "tiny" or args.no_cache else (True,)
    for use_cache in with_cache:
        how = "KV cache" if use_cache else "no cache (recompute)"

        def ours_beam(use_cache: bool = use_cache) -> Tokens:
            return CPMBeeBeamSearch(ours, tokenizer).decode(copy.deepcopy(data), use_cache=use_cache, **beam)[1]

        def ours_sampling(use_cache: bool = use_cache) -> Tokens:
            return CPMBeeSampling(ours, tokenizer).decode(copy.deepcopy(data), use_cache=use_cache, **sampling)[1]

        decoders[f"ours beam 3, {how}"] = ours_beam
        decoders[f"ours sampling top-p 0.9, {how}"] = ours_sampling

    best: dict[str, float] = {}
    results: dict[str, Tokens] = {}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for name, run in decoders.items():
            start = time.process_time()
            results[name] = run()
            best[name] = min(best.get(name, float("inf")), time.process_time() - start)
            loads.append(os.getloadavg()[0])

    prompt_lengths = [prepare(tokenizer, copy.deepcopy(d)).columns["input"].shape[0] for d in data]
    print(f"model: {args.shape} ({config.num_layers} layers, dim {config.dim_model}, dim_ff {config.dim_ff}, "
          f"{config.num_heads}x{config.dim_head} heads, vocab {config.vocab_size}); prompts {args.prompts}"
          f" ({min(prompt_lengths)}-{max(prompt_lengths)} tokens); "
          f"batch {len(data)}, max_length {args.max_length}; {torch.get_num_threads()} thread(s), best of "
          f"{args.repeats}; load average {min(loads):.1f}-{max(loads):.1f}")  # fmt: skip
    print(f"{'decoder':42} {'tokens':>7} {'CPU s':>8} {'tokens/s':>9} {'x ref':>6}")
    ref_name = next((name for name in decoders if name.startswith("reference")), None)
    ref_rate = sum(map(len, results[ref_name])) / best[ref_name] if ref_name else None
    for name in decoders:
        n = sum(map(len, results[name]))
        rate = n / best[name]
        print(f"{name:42} {n:7d} {best[name]:8.2f} {rate:9.1f} {rate / ref_rate if ref_rate else float('nan'):6.1f}")
    identical = {name: results[name] == results[ref_name] for name in decoders if ref_name and name.startswith("ours beam")}
    for name, same in identical.items():
        print(f"{name}: tokens identical to the reference: {same}")
    return 0 if all(identical.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
