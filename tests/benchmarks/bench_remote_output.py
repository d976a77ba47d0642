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
import shutil
import time
from pathlib import Path


from corpus.pipeline.build import build_corpus
from local_s3 import start_s3_server
from schemas import BuildConfig


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
    server, endpoint, client = start_s3_server("bench")
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
