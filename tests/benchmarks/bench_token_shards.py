"""Token-shard build speed: MB/s of dataset bytes turned into Arrow token shards (`bee tokenize`).

Builds a dataset of `--files` data files (~`--mb` MB in all) from the sample corpus: its txt
lines as escaped plain-text records (Chinese, English, mixed) and its json samples as structured
records, then times the conversion alone (the anchor: reading + `convert_data_to_id`), `tokenize_dataset`
from scratch with 1 and 2 workers, and a no-op rerun.
Vocabulary: the official `../shared/cpm-bee/bee.txt` when present, else one built from the
sample corpus (`--vocab` picks another).

    .venv/bin/python tests/benchmarks/bench_token_shards.py [--mb 16] [--files 4] [--vocab PATH]

MB/s counts the data files' `nbytes` (4 + payload per record, as meta.bin does). Besides wall
time it prints MB per CPU-second (user + sys of this process and its workers), which a busy
shared machine disturbs less.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

from corpus.dataset import build_dataset, iter_records, read_meta
from corpus.pipeline.escape import InvalidSample, StructuredEscaper
from corpus.pipeline.read import txt_line_to_text
from schemas.build_config import EscapeConfig
from tokenization.convert import convert_data_to_id
from tokenization.token_shards import record_to_sample, tokenize_dataset
from tokenization.tokenizer import CPMBeeTokenizer
from tokenization.vocab_build import VocabBuildConfig, build_vocab_file

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "corpus" / "sample" / "raw"
OFFICIAL_VOCAB = REPO.parent / "shared" / "cpm-bee" / "bee.txt"


def sample_records() -> list[dict]:
    """One round of records: every sample txt line and every valid json sample, escaped as the
    corpus pipeline escapes them."""
    records: list[dict] = []
    escaper = StructuredEscaper(EscapeConfig())
    for path in sorted((SAMPLE / "txt").glob("*.txt")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            text = txt_line_to_text(line)
            if text:
                records.append({"text": CPMBeeTokenizer.escape(text)})
    for path in sorted((SAMPLE / "json").iterdir()):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                try:
                    sample = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(sample, dict):
                    try:
                        records.append(escaper.escape(sample))
                    except InvalidSample:
                        continue
    return records


def make_dataset(path: Path, megabytes: float, files: int) -> int:
    """Write the dataset; returns its nbytes."""
    pool = itertools.cycle(sample_records())
    per_file = megabytes * 1e6 / files
    for index in range(files):
        with build_dataset(path, f"part-{index:04d}", extra_meta={"escaped": True}) as writer:
            while writer.nbytes < per_file:
                writer.write(next(pool))
    return sum(info.nbytes for info in read_meta(path))


def cpu_seconds() -> float:
    """User + sys CPU time of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=16.0, help="dataset size in MB (meta.bin nbytes)")
    parser.add_argument("--files", type=int, default=4, help="data files (= shards)")
    parser.add_argument("--vocab", type=Path, default=None, help="vocabulary (default: official bee.txt, else built)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-token-shards-"))
    try:
        vocab = args.vocab
        if vocab is None:
            if OFFICIAL_VOCAB.is_file():
                vocab = OFFICIAL_VOCAB
            else:
                vocab = work / "sample-vocab.txt"
                build_vocab_file([SAMPLE], vocab, VocabBuildConfig(size=4096))
        nbytes = make_dataset(work / "ds", args.mb, args.files)
        print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
        print(f"dataset: {nbytes / 1e6:.1f} MB in {args.files} files; vocab: {vocab} "
              f"({CPMBeeTokenizer(vocab).vocab_size} tokens)")
        # Anchor: the conversion alone (read + convert_data_to_id, no shard), one process.
        tokenizer = CPMBeeTokenizer(vocab)
        started, cpu_started = time.perf_counter(), cpu_seconds()
        for record in iter_records(work / "ds"):
            convert_data_to_id(tokenizer, record_to_sample(record, escaped=True), shuffle_answer=False)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        print(f"conversion only: {seconds:.2f} s, {nbytes / 1e6 / seconds:.2f} MB/s wall, "
              f"{nbytes / 1e6 / cpu:.2f} MB per CPU-second")
        for workers in (1, 2):
            out = work / f"shards-{workers}"
            started, cpu_started = time.perf_counter(), cpu_seconds()
            report = tokenize_dataset(work / "ds", vocab, out, workers=workers)
            seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
            stats = report.stats
            # Pool workers are children of the forkserver, not ours: CPU time only for one process.
            per_cpu = f"{nbytes / 1e6 / cpu:.2f} MB per CPU-second" if workers == 1 else "CPU n/a"
            print(f"workers={workers}: {seconds:.2f} s, {nbytes / 1e6 / seconds:.2f} MB/s wall, {per_cpu}, "
                  f"{stats.nrecords / seconds:,.0f} records/s, {stats.ntokens / seconds:,.0f} tokens/s "
                  f"({stats.nrecords} records, {stats.ntokens} tokens, {stats.nrejected} rejected, "
                  f"unk rate {stats.unk_rate:.4f})")
        started = time.perf_counter()
        rerun = tokenize_dataset(work / "ds", vocab, work / "shards-1")
        print(f"no-op rerun (all {len(rerun.fresh)} shards fresh): {time.perf_counter() - started:.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
