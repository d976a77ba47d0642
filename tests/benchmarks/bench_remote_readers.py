"""Readers of a remote build vs a local one: `verify_dataset`, `shard_stats` (bee corpus stats)
and `rejects_summary` (bee corpus rejects) on the same build as a local folder and as `s3://`
objects on a real S3-compatible server (moto's server mode on loopback, started here). Each
reader runs in a fresh child process; its wall time, CPU time and peak RSS are printed as one
Markdown table row, with the bytes it had to read.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_remote_readers.py [--copies 4000] [--shards 4] [--work DIR]

The build is the test suite's corpus (tests/corpus/pipeline/conftest.py); to show that memory
does not grow with the shards, its `arrow/` and `rejects/` shards are replaced by `--shards`
shards holding the records `--copies` times over (what a larger corpus would write; `--shards`
spreads the same rows over more files).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from corpus.pipeline.build import build_corpus
from local_s3 import start_s3_server
from corpus.pipeline.output_folder import BUILD_STAMP
from corpus.pipeline.parquet_shards import ARROW_DIR, REJECTS_DIR
from schemas import BuildConfig

BUCKET = "bench"
CHILD = """
import json, sys, time
from corpus.pipeline import remote_output
what, where, flags = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
start, cpu = time.perf_counter(), time.process_time()
if what == "verify":
    from corpus.dataset import verify_dataset
    if "://" in where:
        remote_output.use_filesystem_options(flags)
    answer = verify_dataset(where + "/data").nlines
elif what == "stats":
    from corpus.pipeline.shard_stats import shard_stats
    answer = shard_stats(where, flags).records
else:
    from corpus.pipeline.shard_stats import rejects_summary
    answer = rejects_summary(where, sample=3, pipeline_args=flags).total
print(json.dumps({"answer": answer, "wall": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                  "rss_mb": next(int(line.split()[1]) for line in open("/proc/self/status")
                                 if line.startswith("VmHWM:")) / 1024}))  # ru_maxrss would carry the parent's over exec
"""


def scale_shards(folder: Path, copies: int, shards: int = 4) -> int:
    """Replace the shards in `folder` by `shards` files holding all their rows `copies` times; bytes written."""
    files = sorted(folder.glob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    suffix = ".rejects.parquet" if files[0].name.endswith(".rejects.parquet") else ".parquet"
    for f in files:
        f.unlink()
    for i in range(shards):
        pq.write_table(pa.concat_tables([table] * (copies // shards)), folder / f"scaled-{i}{suffix}", row_group_size=50_000)
    return sum(f.stat().st_size for f in folder.glob("*.parquet"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--work", default="/work/scratch/remote-readers/bench")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    from tests.corpus.pipeline.conftest import write_corpus

    write_corpus(work / "raw")
    result = build_corpus(BuildConfig(input=[str(work / "raw")], output=str(work / "ds"), dataset_name="bench",
                                      task_name="readers", split={"min_length": 50, "max_length": 1500}),
                          [], log=lambda line: None)
    shard_bytes = {"stats": scale_shards(result.output / ARROW_DIR, args.copies, args.shards),
                   "rejects": scale_shards(result.output / REJECTS_DIR, args.copies, args.shards)}
    shard_bytes["verify"] = sum(f.stat().st_size for f in (result.output / "data").iterdir() if f.is_file())

    server, endpoint, client = start_s3_server(BUCKET)
    files = sorted(p for p in result.output.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in sorted(files, key=lambda p: p.name == BUILD_STAMP):  # the stamp last, as a publish
        client.upload_file(str(path), BUCKET, f"ds/{path.relative_to(result.output).as_posix()}")
    flags = [f"--s3_endpoint_url={endpoint}", "--s3_access_key_id=k", "--s3_secret_access_key=s",
             "--s3_region_name=us-east-1"]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1"}
    print(f"load average {os.getloadavg()}; {args.copies} copies of the records in {args.shards} shards each")
    print("| reader | output | bytes read (MB) | answer | wall (s) | CPU (s) | peak RSS (MB) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for what in ("verify", "stats", "rejects"):
        for label, where in (("local folder", str(result.output)), ("`s3://` (moto)", f"s3://{BUCKET}/ds")):
            out = subprocess.run([sys.executable, "-c", CHILD, what, where, json.dumps(flags if "://" in where else [])],
                                 env=env, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {what} | {label} | {shard_bytes[what] / 1e6:.1f} | {row['answer']:,} | {row['wall']:.2f} "
                  f"| {row['cpu']:.2f} | {row['rss_mb']:.0f} |", flush=True)
    print(f"load average {os.getloadavg()}")
    server.stop()


if __name__ == "__main__":
    main()
