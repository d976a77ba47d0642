"""Cost of `check_record_shape` (the billion-laughs / cycle guard) beside the `pickle.loads` it follows.

    .venv/bin/python tests/benchmarks/bench_record_shape.py [--records 2000] [--repeat 30]

CPU time per record (process time, best of `repeat`), for a flat record (bench_dataset.py's)
and a nested CPM-Bee-shaped one.
"""

from __future__ import annotations

import argparse
import pickle
import time
from collections.abc import Callable

from bench_dataset import make_records

from corpus.dataset.serializer import check_record_shape


def cpu_seconds(work: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    flat = make_records(args.records, 400)
    nested = [{"input": r["text"], "options": {"<option_0>": "a", "<option_1>": "b"}, "question": "q",
               "<ans>": {"answer": "x"}} for r in flat]  # fmt: skip
    for name, records in (("flat", flat), ("nested", nested)):
        payloads = [pickle.dumps(record, protocol=4) for record in records]
        loaded = [pickle.loads(payload) for payload in payloads]
        load = cpu_seconds(lambda ps=payloads: [pickle.loads(p) for p in ps], args.repeat) / len(records)
        pairs = list(zip(loaded, payloads))
        check = cpu_seconds(lambda ps=pairs: [check_record_shape(o, len(p)) for o, p in ps], args.repeat) / len(records)
        print(f"{name:7s} pickle.loads {load * 1e9:6,.0f} ns  check {check * 1e9:6,.0f} ns  ({check / load:.2f}x the load)")


if __name__ == "__main__":
    main()
