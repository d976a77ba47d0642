"""Cost of tracing batches (trainer/trace.py): what recording each step's sample origins adds.

Makes batches of the data loader benchmark's mixture (`bench_data_loader.build_mixture`: mixed
Chinese/English text, in-context samples on one dataset) with `BatchStream`, then times writing
their origins with `TraceWriter` (one line per micro-batch, flushed per step) against making the
batch itself, and reports the bytes a step adds to the trace.

    .venv/bin/python tests/benchmarks/bench_trace.py [--vocab bee.txt] [--batch-size 8] [--max-length 2048]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_data_loader import DEFAULT_VOCAB, build_mixture  # noqa: E402
from tokenization import CPMBeeTokenizer  # noqa: E402
from trainer.stream import BatchStream, StreamConfig  # noqa: E402
from trainer.trace import TraceWriter, trace_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vocab", type=Path, default=DEFAULT_VOCAB)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = build_mixture(root, 4000)
        stream = BatchStream(StreamConfig(manifest, args.batch_size, args.max_length, seed=1), CPMBeeTokenizer(args.vocab))
        writer = TraceWriter(root / "logs", rank=0)
        making = tracing = 0.0
        samples = 0
        for step in range(1, args.steps + 1):
            started = time.perf_counter()
            batch = next(stream)
            made = time.perf_counter()
            writer.write(step, 0, batch["origins"])
            writer.flush()
            tracing += time.perf_counter() - made
            making += made - started
            samples += sum(len(origins) for row in batch["origins"] for _, _, origins in row)
        writer.close()
        size = trace_file(root / "logs", 0).stat().st_size
    print(f"batch {args.batch_size} x {args.max_length} tokens, {args.steps} steps, {samples / args.steps:.1f} samples a step")
    print(f"making a batch (BatchStream):   {1e3 * making / args.steps:8.3f} ms/step")
    print(f"tracing it (write + flush):     {1e3 * tracing / args.steps:8.3f} ms/step "
          f"({100 * tracing / making:.2f}% of making it; the trainer makes batches in a background process)")
    print(f"trace size:                     {size / args.steps / 1024:8.2f} KiB/step, rank 0")


if __name__ == "__main__":
    main()
