"""Write and read throughput of corpus.dataset, beside a naive one-record-at-a-time anchor.

The anchor does what CPM-Bee's DatasetWriter / DistributedDataset.read do per record:
three buffered writes per record; on read, `read(1)` magic, `read(4)` length, `read(n)`
payload, then plain `pickle.loads` / `json.loads`. Ours buffers whole blocks and reads a
block in one `pread`, and pickles go through the restricted unpickler. The "naive +
restricted_loads" and "naive + RestrictedUnpickler" lines swap only the decoder into the
anchor, to show what restriction costs by itself.

    .venv/bin/python tests/benchmarks/bench_dataset.py [--records 50000] [--chars 400] [--repeat 3]

Figures are best-of-`repeat`, data in the page cache (a warm read), one process.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import pickle
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from corpus.dataset import DistributedDataset, RestrictedUnpickler, build_dataset, read_meta, restricted_loads

BLOCK_SIZE = 16 << 20


def make_records(count: int, chars: int) -> list[dict]:
    text = "北京是中国的首都，也是一座历史悠久的城市。Beijing is the capital of China, a city with a long history. "
    body = (text * (chars // len(text) + 1))[:chars]
    return [{"text": body[: chars // 2 + (i * 7919) % (chars // 2)], "id": i, "source": "bench", "score": i / 3} for i in range(count)]


def naive_write(path: Path, records: list, dumps: Callable[[object], bytes]) -> None:
    path.mkdir(parents=True)
    offset = 0
    with open(path / "data", "wb") as file:
        for record in records:
            payload = dumps(record)
            header = struct.pack("I", len(payload))
            if offset + 2 + 4 + len(payload) > BLOCK_SIZE:
                file.write(b"\x00" * (BLOCK_SIZE - offset))
                offset = 0
            file.write(b"\x1f")
            file.write(header)
            file.write(payload)
            offset += 5 + len(payload)
        file.write(b"\x00" * (BLOCK_SIZE - offset))


def naive_read(path: Path, loads: Callable[[bytes], object]) -> int:
    count = 0
    size = os.path.getsize(path / "data")
    with open(path / "data", "rb") as file:
        for block in range(size // BLOCK_SIZE):
            file.seek(block * BLOCK_SIZE)
            while True:
                magic = file.read(1)
                if magic != b"\x1f":
                    break
                (length,) = struct.unpack("I", file.read(4))
                loads(file.read(length))
                count += 1
    return count


def ours_write(path: Path, records: list, serializer: str) -> None:
    with build_dataset(path, "data", block_size=BLOCK_SIZE, serializer=serializer) as writer:
        for record in records:
            writer.write(record)


def unpickler_class_loads(data: bytes):
    """RestrictedUnpickler alone (the fallback path): one Unpickler over a BytesIO per record."""
    return RestrictedUnpickler(io.BytesIO(data)).load()


def ours_read(path: Path) -> int:
    dataset = DistributedDataset(path, max_repeat_times=1, shuffle=False)
    count = 0
    read = dataset.read
    try:
        while True:
            read()
            count += 1
    except EOFError:
        return count


def best_of(repeat: int, run: Callable[[], object], setup: Callable[[], None] = lambda: None) -> float:
    times = []
    for _ in range(repeat):
        setup()
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--chars", type=int, default=400, help="longest text, characters")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    records = make_records(args.records, args.chars)
    workdir = Path(tempfile.mkdtemp(prefix="bench-dataset-"))
    json_dumps = lambda obj: json.dumps(obj, ensure_ascii=False).encode("utf-8")  # noqa: E731
    json_loads = lambda data: json.loads(data.decode("utf-8"))  # noqa: E731
    rows = []
    try:
        for name, dumps, loads in (("pickle", pickle.dumps, pickle.loads), ("json", json_dumps, json_loads)):
            naive_dir, ours_dir = workdir / f"naive-{name}", workdir / f"ours-{name}"
            reset = lambda *dirs: [shutil.rmtree(d, ignore_errors=True) for d in dirs]  # noqa: E731
            t_naive_w = best_of(args.repeat, lambda: naive_write(naive_dir, records, dumps), lambda: reset(naive_dir))
            t_ours_w = best_of(args.repeat, lambda: ours_write(ours_dir, records, name), lambda: reset(ours_dir))
            payload_mb = read_meta(ours_dir)[0].nbytes / 1e6
            assert naive_read(naive_dir, loads) == ours_read(ours_dir) == len(records)
            assert (naive_dir / "data").read_bytes() == (ours_dir / "data").read_bytes()  # same format
            t_naive_r = best_of(args.repeat, lambda: naive_read(naive_dir, loads))
            t_ours_r = best_of(args.repeat, lambda: ours_read(ours_dir))
            rows += [
                (name, "write", "naive, one record at a time", t_naive_w),
                (name, "write", "corpus.dataset (buffered, sha256)", t_ours_w),
                (name, "read", f"naive: read(1)/read(4)/read(n) + {name}.loads", t_naive_r),
                (name, "read", "corpus.dataset (block pread" + (", restricted unpickler)" if name == "pickle" else ")"), t_ours_r),
            ]
            if name == "pickle":
                t_hooked = best_of(args.repeat, lambda: naive_read(naive_dir, restricted_loads))
                t_class = best_of(args.repeat, lambda: naive_read(naive_dir, unpickler_class_loads))
                rows.append((name, "read", "naive + restricted_loads (pickle.loads + audit hook)", t_hooked))
                rows.append((name, "read", "naive + RestrictedUnpickler(BytesIO) per record", t_class))
            print(f"{name}: {len(records):,} records, {payload_mb:.1f} MB of payload", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{'format':7} {'op':6} {'implementation':58} {'records/s':>12} {'MB/s':>8}")
    for name, op, impl, seconds in rows:
        mb = sum(len(pickle.dumps(r)) if name == "pickle" else len(json_dumps(r)) for r in records[:1000]) / 1000 * len(records) / 1e6
        print(f"{name:7} {op:6} {impl:58} {len(records) / seconds:12,.0f} {mb / seconds:8.1f}")


if __name__ == "__main__":
    main()
