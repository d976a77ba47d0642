"""Remote vs local output: the same corpus build to a local folder and to `s3://` on a real
S3-compatible server (moto's server mode on loopback), then the up-to-date rebuild of each.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_remote_output.py \\
        [--input /work/scratch/corpus-bench/corpus-15 | --input test] [--work /work/scratch/remote-outputs/bench]

The input defaults to bench_corpus.py's cached 15 MB corpus (`--mb 15`); `--input test` writes
the test suite's corpus (tests/corpus/pipeline/conftest.py, 242 lines). Prints one Markdown
table row per build and checks the binary dataset bytes are the same.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import socket
import time
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from corpus.pipeline.build import build_corpus
from schemas import BuildConfig


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config(inputs: str, output: str) -> BuildConfig:
    return BuildConfig(input=[inputs], output=output, dataset_name="bench", task_name="remote")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default="/work/scratch/corpus-bench/corpus-15")
    parser.add_argument("--work", default="/work/scratch/remote-outputs/bench")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                          region_name="us-east-1")
    client.create_bucket(Bucket="bench")
    flags = [f"--s3_endpoint_url={endpoint}", "--s3_access_key_id=k", "--s3_secret_access_key=s",
             "--s3_region_name=us-east-1"]
    if args.input == "test":
        from tests.corpus.pipeline.conftest import write_corpus

        args.input = str(work / "raw")
        write_corpus(Path(args.input))
    input_mb = sum(p.stat().st_size for p in Path(args.input).rglob("*") if p.is_file()) / 1e6
    print(f"input {args.input}: {input_mb:.1f} MB")
    print("| output | build (s) | rebuild, up to date (s) | written | rejected |")
    print("|---|---|---|---|---|")
    results = {}
    for name, output, pipeline_args in (("local folder", str(work / "ds"), []),
                                        ("s3:// (moto server, loopback)", "s3://bench/out/ds", flags)):
        start = time.perf_counter()
        first = build_corpus(config(args.input, output), pipeline_args, log=lambda line: None)
        built = time.perf_counter() - start
        start = time.perf_counter()
        again = build_corpus(config(args.input, output), pipeline_args, log=lambda line: None)
        rebuilt = time.perf_counter() - start
        assert again.up_to_date
        results[name] = first
        print(f"| {name} | {built:.1f} | {rebuilt:.2f} | {first.written} | {first.rejected} |")
    local_data = {p.name: p.read_bytes() for p in (work / "ds" / "data").iterdir() if not p.name.startswith(".")}
    remote_data = {name: client.get_object(Bucket="bench", Key=f"out/ds/data/{name}")["Body"].read() for name in local_data}
    print("binary dataset identical:", local_data == remote_data)
    server.stop()


if __name__ == "__main__":
    main()
