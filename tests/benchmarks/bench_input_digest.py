"""Cost of the input content digest a corpus build computes on every run (input_digest.py),
beside the other checksums the standard library offers and a plain read of the same bytes.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_input_digest.py [--mb 1000] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
import zlib

from corpus.pipeline.input_digest import CHUNK_BYTES, content_digest


def timed(label: str, path: str, update) -> None:
    started = time.perf_counter()
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            update(chunk)
    seconds = time.perf_counter() - started
    print(f"| {label} | {os.path.getsize(path) / seconds / 1e6:.0f} MB/s |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1000)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile(dir=args.dir) as file:
        for _ in range(args.mb):
            file.write(os.urandom(1 << 20))
        file.flush()
        print("| checksum | throughput |\n|---|---|")
        timed("read only", file.name, lambda chunk: None)
        crc = [0]
        timed("zlib.crc32", file.name, lambda chunk: crc.__setitem__(0, zlib.crc32(chunk, crc[0])))
        for name in ("sha256", "sha1", "blake2b", "md5"):
            timed(f"hashlib.{name}", file.name, hashlib.new(name).update)
        started = time.perf_counter()
        content_digest(file.name)
        print(f"| content_digest (through Beam FileSystems) | "
              f"{args.mb * (1 << 20) / (time.perf_counter() - started) / 1e6:.0f} MB/s |")


if __name__ == "__main__":
    main()
