"""Throughput of the data path (manifest -> transforms -> ids -> packed batches) and the trainer's data wait.

Builds a synthetic two-dataset mixture (mixed Chinese/English text, in-context samples on
one dataset), then measures
1. `BatchStream` alone: packed tokens per second of one CPU core;
2. `MixtureLoader` in its background process feeding a consumer that "trains" for a fixed
   time per step: the share of step time spent waiting for data. Anchor (issue 6): data
   wait below 5% of step time;
3. `BatchStream` on a plain-text dataset without a transform, tokenizing online beside
   reading its token shards (`bee tokenize`): what shards save the loader.

    .venv/bin/python tests/benchmarks/bench_data_loader.py [--vocab bee.txt] [--step-ms 200]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from corpus.dataset import build_dataset  # noqa: E402
from tokenization import CPMBeeTokenizer, tokenize_dataset  # noqa: E402
from trainer.data import MixtureLoader  # noqa: E402
from trainer.stream import BatchStream, StreamConfig  # noqa: E402

DEFAULT_VOCAB = REPO.parent / "shared" / "cpm-bee" / "bee.txt"
WORDS = "我们 训练 语言 模型 数据 中文 the model learns from data and packing of long documents".split()


def build_mixture(root: Path, n: int) -> Path:
    r = random.Random(0)
    with build_dataset(root / "web", "part-0000") as writer:
        for _ in range(n):
            writer.write({"text": " ".join(r.choice(WORDS) for _ in range(r.randint(20, 600)))})
    with build_dataset(root / "qa", "part-0000") as writer:
        for _ in range(n // 2):
            writer.write({"q": " ".join(r.choice(WORDS) for _ in range(r.randint(5, 60))), "a": r.choice(WORDS)})
    manifest = root / "datasets.json"
    manifest.write_text(
        json.dumps(
            [
                {"dataset_name": "web", "task_name": "lm", "path": "web", "transforms": [{"input": "$text", "<ans>": ""}]},
                {"dataset_name": "qa", "task_name": "qa", "path": "qa", "incontext_weight": [0.4, 0.3, 0.3],
                 "transforms": [{"question": "$q", "<ans>": "$a"}]},
            ]
        )
    )
    return manifest


def build_text_dataset(root: Path, n: int, vocab: Path) -> Path:
    """A plain-text dataset without a transform, with its token shards."""
    r = random.Random(1)
    with build_dataset(root / "text", "part-0000") as writer:
        for _ in range(n):
            writer.write({"text": " ".join(r.choice(WORDS) for _ in range(r.randint(20, 600)))})
    tokenize_dataset(root / "text", vocab)
    manifest = root / "text.json"
    manifest.write_text(json.dumps([{"dataset_name": "text", "task_name": "lm", "path": "text", "incontext_weight": [0.5, 0.5]}]))
    return manifest


def stream_run(stream: BatchStream, batches: int) -> tuple[int, float]:
    """(packed tokens, seconds) of `batches` batches of `stream`, after one to warm up."""
    next(stream)
    started = time.perf_counter()
    tokens = sum(int(next(stream)["length"].sum()) for _ in range(batches))
    return tokens, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=Path, default=DEFAULT_VOCAB)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--step-ms", type=float, default=200.0, help="simulated train step per batch")
    args = parser.parse_args()
    if not args.vocab.is_file():
        print(f"skipped: vocabulary {args.vocab} not present")
        return 0
    tokenizer = CPMBeeTokenizer(args.vocab)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = build_mixture(Path(tmp), args.records)

        tokens, seconds = stream_run(BatchStream(StreamConfig(manifest, args.batch_size, args.max_length, seed=0), tokenizer), args.batches)
        fill = tokens / (args.batches * args.batch_size * args.max_length)
        print(f"BatchStream, one core: {tokens / seconds:,.0f} tokens/s, {args.batches / seconds:.2f} batches/s "
              f"of {args.batch_size}x{args.max_length}, rows {fill:.1%} full")

        with MixtureLoader(StreamConfig(manifest, args.batch_size, args.max_length, seed=0), tokenizer) as loader:
            next(loader)  # start-up (spawn, imports, vocabulary) is not part of the steady state
            loader.wait_seconds = 0.0
            started = time.perf_counter()
            for _ in range(args.batches):
                next(loader)
                time.sleep(args.step_ms / 1000)
            total = time.perf_counter() - started
            print(f"MixtureLoader with a {args.step_ms:.0f} ms step: data wait {loader.wait_seconds / total:.1%} "
                  f"of step time ({loader.wait_seconds * 1000 / args.batches:.1f} ms/step)   [anchor: < 5%]")

        text = build_text_dataset(Path(tmp), args.records, args.vocab)
        rates = {}
        for shards in (False, True):
            stream = BatchStream(StreamConfig(text, args.batch_size, args.max_length, seed=0, token_shards=shards), tokenizer)
            tokens, seconds = stream_run(stream, args.batches)
            rates[shards] = tokens / seconds
            assert stream.samples_read["online" if not shards else "shards"] > 0 and len(stream.samples_read) == 1
        print(f"plain text, no transform: tokenized online {rates[False]:,.0f} tokens/s, from token shards "
              f"{rates[True]:,.0f} tokens/s ({rates[True] / rates[False]:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
