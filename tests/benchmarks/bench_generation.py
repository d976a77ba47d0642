"""Generation speed: tokens/s of beam search (beam 3) and of sampling, with the key/value cache
and without, beside CPM-Bee's reference `CPMBeeBeamSearch` on the same weights and inputs in the
same run (CPU, float32). Also checks that our beam search answers equal the reference's.

    .venv/bin/python tests/benchmarks/bench_generation.py [--reference DIR] [--batch 6] [--max-length 32]

Tokens/s counts the answer tokens of the returned hypotheses (`</s>` included) over the wall
time of `generate` (conversion and batching included). The reference part is skipped when its
scratch checkout is absent (see compare_generation_reference.py).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_generation_reference import (  # noqa: E402
    DEFAULT_REFERENCE,
    VOCAB,
    build_models,
    load_reference,
    model_config,
    run_ours,
    samples,
)  # fmt: skip

from schemas.model_config import ModelConfig  # noqa: E402
from tokenization.tokenizer import CPMBeeTokenizer  # noqa: E402
from trainer.generation import CPMBeeSampling  # noqa: E402
from trainer.generation.search import sample  # noqa: E402
from trainer.generation.stepper import Stepper  # noqa: E402
from trainer.model import CPMBee  # noqa: E402


def timed(fn, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def sampled_tokens(model, tokenizer, data, use_cache: bool, max_length: int) -> int:
    gen = CPMBeeSampling(model, tokenizer)
    stepper = Stepper(model, gen.prepare(copy.deepcopy(data)), use_cache=use_cache, max_steps=max_length + 2)
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        answers = sample(stepper, tokenizer, max_length, 1.0, 0, 0.9, 1.0, None, generator)
    return sum(len(a) for a in answers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--batch", type=int, default=6)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dim", type=int, default=128, help="dim_model (heads of 32, dim_ff 2x)")
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    tokenizer = CPMBeeTokenizer(VOCAB)
    config: ModelConfig = model_config().model_copy(
        update={"dim_model": args.dim, "dim_ff": 2 * args.dim, "num_heads": args.dim // 32, "num_layers": args.layers}
    )
    have_reference = (args.reference / "cpm_live" / "generation" / "bee.py").is_file()
    reference = load_reference(args.reference) if have_reference else None
    if reference:
        ours, ref = build_models(config, reference, tokenizer.eos_id)
    else:
        torch.manual_seed(0)
        ours, ref = CPMBee(config).eval(), None
    data = samples(args.batch)
    kwargs = dict(beam_size=3, max_length=args.max_length, repetition_penalty=1.0, repetition_window=None)
    rows = []
    ref_tokens = None
    if ref is not None:

        gen = reference["beam_search"](ref, reference["tokenizer"])

        def reference_run():
            inputs, info = gen._process_list(copy.deepcopy(data))
            with torch.inference_mode():
                return gen._decode(inputs, info, **kwargs)

        seconds, result = timed(reference_run, args.repeats)
        ref_tokens = [[tuple(map(int, t)) for t in s] for s in result]
        rows.append(("reference CPMBeeBeamSearch, beam 3", sum(map(len, ref_tokens)), seconds))
    identical = {}
    for use_cache in (True, False):
        seconds, (tokens, _) = timed(lambda: run_ours(ours, tokenizer, data, use_cache, **kwargs), args.repeats)
        name = f"ours beam 3, {'KV cache' if use_cache else 'no cache (full recompute)'}"
        rows.append((name, sum(map(len, tokens)), seconds / 2))  # run_ours decodes twice (tokens, then generate)
        if ref_tokens is not None:
            identical[name] = tokens == ref_tokens
    for use_cache in (True, False):
        seconds, n = timed(lambda: sampled_tokens(ours, tokenizer, data, use_cache, args.max_length), args.repeats)
        rows.append((f"ours sampling top-p 0.9, {'KV cache' if use_cache else 'no cache (full recompute)'}", n, seconds))

    print(f"model: {config.num_layers} layers, dim {config.dim_model}, vocab {config.vocab_size}; batch {len(data)}, "
          f"max_length {args.max_length}, {torch.get_num_threads()} threads, best of {args.repeats}")  # fmt: skip
    print(f"{'decoder':46} {'tokens':>7} {'seconds':>8} {'tokens/s':>9} {'x ref':>6}")
    ref_rate = rows[0][1] / rows[0][2] if ref is not None else None
    for name, n, seconds in rows:
        rate = n / seconds
        print(f"{name:46} {n:7d} {seconds:8.2f} {rate:9.1f} {rate / ref_rate if ref_rate else float('nan'):6.1f}")
    for name, same in identical.items():
        print(f"{name}: answers identical to the reference: {same}")
    return 0 if all(identical.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
