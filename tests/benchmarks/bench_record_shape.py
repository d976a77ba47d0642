"""Cost of the record guards beside the `pickle.loads` they go with: `check_record_shape` (billion
laughs, cycles; after loading) and the hash-bomb guard before it (`shares_objects`, C, on every
pickle; `check_pickle_hashing`, which scans in Python only a pickle that shares objects).

    .venv/bin/python tests/benchmarks/bench_record_shape.py [--records 2000] [--repeat 30]

CPU time per record (process time, best of `repeat`), for a flat record (bench_dataset.py's),
a nested CPM-Bee-shaped one, and one whose rows share strings (json.loads shares repeated keys,
so pickle writes BINGETs: the scanned case).
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from collections.abc import Callable

from bench_dataset import make_records

from corpus.dataset.serializer import check_record_shape

try:  # the hash-bomb guard (absent before it was added: then only the shape check is timed)
    from corpus.dataset.serializer import check_pickle_hashing, shares_objects
except ImportError:
    check_pickle_hashing = shares_objects = None


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
    shared = [json.loads(json.dumps({"text": r["text"], "rows": [{"role": "user", "content": ""}] * 4})) for r in flat]
    for name, records in (("flat", flat), ("nested", nested), ("shared", shared)):
        payloads = [pickle.dumps(record, protocol=4) for record in records]
        loaded = [pickle.loads(payload) for payload in payloads]
        load = cpu_seconds(lambda ps=payloads: [pickle.loads(p) for p in ps], args.repeat) / len(records)
        pairs = list(zip(loaded, payloads))
        check = cpu_seconds(lambda ps=pairs: [check_record_shape(o, len(p)) for o, p in ps], args.repeat) / len(records)
        line = f"{name:7s} pickle.loads {load * 1e9:6,.0f} ns  check {check * 1e9:6,.0f} ns  ({check / load:.2f}x the load)"
        if check_pickle_hashing is not None:
            gate = cpu_seconds(lambda ps=payloads: [shares_objects(p) for p in ps], args.repeat) / len(records)
            hashing = cpu_seconds(lambda ps=payloads: [check_pickle_hashing(p) for p in ps], args.repeat) / len(records)
            scanned = sum(map(shares_objects, payloads))
            line += (f"  shares_objects {gate * 1e9:5,.0f} ns ({gate / load:.2f}x)  check_pickle_hashing {hashing * 1e9:7,.0f} ns"
                     f" ({hashing / load:.2f}x; {scanned}/{len(payloads)} scanned)")
        print(line)


if __name__ == "__main__":
    main()
