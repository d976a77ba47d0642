"""Write and read throughput of corpus.dataset, beside a naive one-record-at-a-time anchor.

The anchor does what CPM-Bee's DatasetWriter / DistributedDataset.read do per record:
three buffered writes per record; on read, `read(1)` magic, `read(4)` length, `read(n)`
payload, then plain `pickle.loads` / `json.loads`. Ours buffers whole blocks and reads a
block in one `pread`, and pickles go through the restricted unpickler. The "naive +
PlainDataUnpickler" and "naive + RestrictedUnpickler" lines swap only the decoder into the
anchor, to show what restriction costs by itself.

    .venv/bin/python tests/benchmarks/bench_dataset.py [--records 50000] [--chars 400] [--repeat 7]

Figures are best-of-`repeat` with the implementations taking turns in each round, data in\nthe page cache (a warm read), one process.
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

from corpus.dataset import DistributedDataset, PlainDataUnpickler, RestrictedUnpickler, build_dataset, read_meta

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


def interleaved_best(repeat: int, runs: list[tuple[Callable[[], object], Callable[[], None]]]) -> list[tuple[float, float]]:
    """Best (wall, CPU) seconds of each (run, setup) over `repeat` rounds, the runs taking
    turns in each round so that a busy machine slows them alike. CPU time (user + system of
    this process) is what a shared machine disturbs least."""
    best = [(float("inf"), float("inf"))] * len(runs)
    for _ in range(repeat):
        for index, (run, setup) in enumerate(runs):
            setup()
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[index] = (min(best[index][0], wall), min(best[index][1], cpu))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--chars", type=int, default=400, help="longest text, characters")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    records = make_records(args.records, args.chars)
    workdir = Path(tempfile.mkdtemp(prefix="bench-dataset-"))
    json_dumps = lambda obj: json.dumps(obj, ensure_ascii=False).encode("utf-8")  # noqa: E731
    json_loads = lambda data: json.loads(data.decode("utf-8"))  # noqa: E731
    nothing = lambda: None  # noqa: E731
    plain_data_loads = PlainDataUnpickler().loads
    rows = []
    try:
        for name, dumps, loads in (("pickle", pickle.dumps, pickle.loads), ("json", json_dumps, json_loads)):
            naive_dir, ours_dir = workdir / f"naive-{name}", workdir / f"ours-{name}"
            writes = interleaved_best(
                args.repeat,
                [
                    (lambda: naive_write(naive_dir, records, dumps), lambda: shutil.rmtree(naive_dir, ignore_errors=True)),
                    (lambda: ours_write(ours_dir, records, name), lambda: shutil.rmtree(ours_dir, ignore_errors=True)),
                ],
            )
            payload_mb = read_meta(ours_dir)[0].nbytes / 1e6
            assert naive_read(naive_dir, loads) == ours_read(ours_dir) == len(records)
            assert (naive_dir / "data").read_bytes() == (ours_dir / "data").read_bytes()  # same format
            reads = [
                (f"naive: read(1)/read(4)/read(n) + {name}.loads", lambda: naive_read(naive_dir, loads)),
                ("corpus.dataset (block pread" + (", restricted unpickling)" if name == "pickle" else ")"), lambda: ours_read(ours_dir)),
            ]
            if name == "pickle":
                reads += [
                    ("naive + PlainDataUnpickler (pickle.loads + audit hook)", lambda: naive_read(naive_dir, plain_data_loads)),
                    ("naive + RestrictedUnpickler(BytesIO) per record", lambda: naive_read(naive_dir, unpickler_class_loads)),
                ]
            read_times = interleaved_best(args.repeat, [(run, nothing) for _, run in reads])
            rows.append((name, "write", "naive, one record at a time", writes[0], payload_mb))
            rows.append((name, "write", "corpus.dataset (buffered, sha256)", writes[1], payload_mb))
            rows += [(name, "read", label, seconds, payload_mb) for (label, _), seconds in zip(reads, read_times)]
            print(f"{name}: {len(records):,} records, {payload_mb:.1f} MB of records (nbytes)", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n{'':72} {'per CPU second':>20} {'wall clock':>10}")
    print(f"{'format':7} {'op':6} {'implementation':57} {'records/s':>11} {'MB/s':>8} {'records/s':>11}")
    for name, op, label, (wall, cpu), mb in rows:
        print(f"{name:7} {op:6} {label:57} {len(records) / cpu:11,.0f} {mb / cpu:8.1f} {len(records) / wall:11,.0f}")


if __name__ == "__main__":
    main()
