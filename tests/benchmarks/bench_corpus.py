"""Corpus pipeline figures against issue 13's targets (not a test): the build run exactly as a
user runs it, dedupe recall and precision against planted pairs, JSONL documents accepted,
throughput against datatrove's MinHash dedupe on the same text, per-stage CPU seconds, and
worker memory as the corpus doubles.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_corpus.py --work /work/scratch/corpus-bench \\
        [--mb 60] [--datatrove-python /work/scratch/corpus-bench/dtvenv/bin/python] [--skip-memory]

The corpus (corpus_bench_data.py): ~54 MB of real Chinese and English text from Debian
packages, half JSONL `{"text", "id", "source"}` and half CPM-Bee txt, with planted exact, near
and mojibake duplicates whose two copies sit in different halves. It is built once, seeded,
and cached under --work.

The build is `bee corpus build --input IN --output OUT --dataset-name bench --task-name bench`
and nothing else (run as `python -m flows.cli` so that this checkout's code is what runs).

datatrove's venv (its own, never the project's), as last set up (datatrove 0.10.1): `python3.11
-m venv dtvenv && dtvenv/bin/pip install datatrove regex spacy tokenizers orjson "xxhash<4"`
(its MinHash step imports these without declaring them; with xxhash 4 it fails with "Strings
must be encoded before hashing"). The Debian packages come from `apt-get download` (--packages).
Wall clock and CPU seconds are printed with the load average around each run: on a shared
machine CPU seconds also grow with the load (the same build measured 28 and 49 CPU-s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_bench_data import NEAR_THRESHOLD, jaccard, make_corpus, read_texts

from corpus.pipeline.clean import clean_text
from corpus.pipeline.parquet_shards import (
    RECORDS_SUFFIX,
    REJECTS_SUFFIX,
    list_shards,
    read_records,
    read_rejects,
)
from corpus.pipeline.split import split_text
from schemas.build_config import CleanConfig

REPO = Path(__file__).resolve().parents[2]
DEDUPE_REASONS = ("exact_duplicate", "near_duplicate")
AFTER_DEDUPE_STAGES = ("escape",)  # rejects of these stages come after dedupe: the copy still counts
PRECISION_JACCARD = 0.7
CJK = re.compile(r"[\u3400-\u9fff]")
TARGETS = {"exact_recall": 1.0, "near_recall": 0.95, "near_precision": 0.95, "jsonl_missing_ans": 0, "speedup": 3.0}


# --- running things -----------------------------------------------------------------------------

def watch(process: psutil.Popen, phase=None) -> tuple[dict[int, int], dict[int, float], dict[str, int]]:
    """Poll `process` and its descendants until it exits; returns peak RSS and last-seen CPU
    seconds (user + system) per process, key 0 for `process` itself, and, when `phase` (a
    function naming the build's current phase) is given, the busiest process's peak RSS in each
    phase. Polling misses at most the last 0.2 s of each process, the same for every tool measured."""
    peaks: dict[int, int] = {}
    cpu: dict[int, float] = {}
    phase_peaks: dict[str, int] = {}
    while process.poll() is None:
        label = phase() if phase else None
        try:
            for proc in [process] + process.children(recursive=True):
                try:
                    key = 0 if proc.pid == process.pid else proc.pid
                    with proc.oneshot():
                        rss = proc.memory_info().rss
                        times = proc.cpu_times()
                    peaks[key] = max(peaks.get(key, 0), rss)
                    cpu[key] = times.user + times.system
                    if label:
                        phase_peaks[label] = max(phase_peaks.get(label, 0), rss)
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.2)
    return peaks, cpu, phase_peaks


def build_phase(input_dir: Path, output: Path):
    """A function naming the phase a build of `input_dir` into `output` is in, from the files it
    has written: "per-file" until every input file has its checkpoint marker, then "dedupe"
    (the global stages) until the first record shard appears, then "finish"."""
    inputs = sum(1 for path in input_dir.rglob("*") if path.is_file())
    prepared = output.with_name(output.name + ".work") / "prepared"
    shards = output.with_name(output.name + ".building") / "arrow"

    def phase() -> str:
        if len(list(prepared.rglob("*.done.json"))) < inputs:
            return "per-file"
        return "finish" if shards.exists() and any(shards.iterdir()) else "dedupe"

    return phase


def build_command(input_dir: Path, output: Path) -> list[str]:
    """The build exactly as issue 13 runs it: these four flags and nothing else."""
    return [sys.executable, "-m", "flows.cli", "corpus", "build", "--input", str(input_dir), "--output", str(output),
            "--dataset-name", "bench", "--task-name", "bench"]


def run_build(input_dir: Path, output: Path) -> tuple[float, dict[int, int], dict[int, float], dict[str, int], str]:
    """The build in a subprocess (this checkout's code); returns (seconds, peak RSS and CPU
    seconds per process (key 0 is the driver), the busiest process's peak RSS per phase, its log)."""
    for path in (output, output.with_name(output.name + ".work"), output.with_name(output.name + ".building"),
                 output.parent / "datasets.json"):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    log = output.with_name(output.name + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    with open(log, "w") as out:  # a file, not a pipe, which could fill up and stall the build
        process = psutil.Popen(build_command(input_dir, output), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        peaks, cpu, phase_peaks = watch(process, build_phase(input_dir, output))
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(log.read_text()[-3000:])
    return seconds, peaks, cpu, phase_peaks, log.read_text()


DATATROVE_SCRIPT = textwrap.dedent('''
    import sys, time
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupSignature, MinhashDedupBuckets,
                                                  MinhashDedupCluster, MinhashDedupFilter)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    def main():  # datatrove's workers are spawned processes: everything below __main__
        src, work, tasks = sys.argv[1], sys.argv[2], int(sys.argv[3])
        config = MinhashConfig()  # FineWeb's settings are datatrove's defaults: 5-grams, 14 buckets x 8 hashes
        t0 = time.monotonic()
        LocalPipelineExecutor(pipeline=[JsonlReader(src), MinhashDedupSignature(output_folder=f"{work}/sigs", config=config)],
                              tasks=tasks, workers=tasks, logging_dir=f"{work}/logs/s").run()
        LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets", config=config)],
                              tasks=config.num_buckets, workers=tasks, logging_dir=f"{work}/logs/b").run()
        LocalPipelineExecutor(pipeline=[MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove_ids", config=config)],
                              tasks=1, logging_dir=f"{work}/logs/c").run()
        LocalPipelineExecutor(pipeline=[JsonlReader(src), MinhashDedupFilter(input_folder=f"{work}/remove_ids"),
                                        JsonlWriter(f"{work}/out")], tasks=tasks, workers=tasks, logging_dir=f"{work}/logs/f").run()
        print("CONFIG", config)
        print("SECONDS", time.monotonic() - t0)

    if __name__ == "__main__":
        main()
''')


def datatrove_input(texts: dict[tuple[str, int], str], src: Path, files: int = 2) -> None:
    """The same documents' texts (as the build reads them) as JSONL, pre-split into `files` files of
    about equal size."""
    src.mkdir(parents=True)
    total = sum(len(t.encode()) for t in texts.values())
    parts: list[list[str]] = [[] for _ in range(files)]
    written = 0
    for (path, line), text in texts.items():
        parts[min(files - 1, written * files // max(1, total))].append(
            json.dumps({"id": f"{path}:{line}", "text": text}, ensure_ascii=False) + "\n")
        written += len(text.encode())
    for index, lines in enumerate(parts):
        (src / f"{index:04d}.jsonl").write_text("".join(lines), encoding="utf-8")


def run_datatrove(python: str, texts: dict[tuple[str, int], str], work: Path, tasks: int = 2) -> tuple[float, float, float]:
    """datatrove's MinHash dedupe (FineWeb defaults, `tasks` tasks and workers) on `texts`;
    returns (wall seconds of the process, seconds inside its script, CPU seconds of its processes)."""
    shutil.rmtree(work, ignore_errors=True)
    datatrove_input(texts, work / "src")
    script = work / "dt.py"
    script.write_text(DATATROVE_SCRIPT)
    started = time.monotonic()
    with open(work / "stdout.txt", "w") as stdout, open(work / "stderr.txt", "w") as stderr:
        process = psutil.Popen([python, str(script), str(work / "src"), str(work / "run"), str(tasks)],
                               stdout=stdout, stderr=stderr)
        _, cpu, _ = watch(process)
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError((work / "stderr.txt").read_text()[-3000:])
    inner = float(re.search(r"SECONDS ([\d.]+)", (work / "stdout.txt").read_text()).group(1))
    return seconds, inner, sum(cpu.values())


# --- per-stage CPU seconds ----------------------------------------------------------------------

class _Timed:
    """A per-file stage whose `outputs` adds the CPU time spent inside it (not in later stages)."""

    def __init__(self, stage, seconds: dict[str, float], name: str):
        self.stage, self.seconds, self.name = stage, seconds, name

    def setup(self) -> None:
        self.stage.setup()

    def outputs(self, element):
        start = time.process_time()
        outputs = iter(self.stage.outputs(element))  # a record's outputs are all made here
        self.seconds[self.name] += time.process_time() - start
        while True:
            start = time.process_time()
            try:
                output = next(outputs)
            except StopIteration:
                self.seconds[self.name] += time.process_time() - start
                return
            self.seconds[self.name] += time.process_time() - start
            yield output


def stage_cpu_seconds(input_dir: Path, output: Path) -> dict[str, float]:
    """CPU seconds of each per-file stage over the whole corpus, one core, in this process: the
    build's own stages, configured by the same command line, chained by `file_chain.run_stages` as
    the build chains them (without writing checkpoints)."""
    from corpus.pipeline.cli import argument_parser, config_from_args
    from corpus.pipeline.file_chain import run_stages
    from corpus.pipeline.pipeline import per_file_stages
    from corpus.pipeline.read import list_input_files

    args, _ = argument_parser().parse_known_args(build_command(input_dir, output)[5:])
    config = config_from_args(args)
    seconds: dict[str, float] = defaultdict(float)
    stages = [_Timed(stage, seconds, type(stage).__name__) for stage in per_file_stages(config)]
    for stage in stages:
        stage.setup()
    files, _ = list_input_files([str(input_dir)], config.read)
    for file in files:
        run_stages(stages, [file])
    return dict(seconds)


# --- dedupe quality -----------------------------------------------------------------------------

def read_output(output: Path):
    """Kept pieces per document and rejects per document, keyed by (source_path, source_line)."""
    kept: dict[tuple[str, int], int] = Counter()
    rejects: dict[tuple[str, int], list] = defaultdict(list)
    for _, url in list_shards(str(output / "arrow"), RECORDS_SUFFIX):
        for record in read_records(url):
            kept[(record.source_path, record.source_line)] += 1
    for _, url in list_shards(str(output / "rejects"), REJECTS_SUFFIX):
        for reject in read_rejects(url):
            rejects[(reject.source_path, reject.source_line)].append(reject)
    return kept, rejects


def _doc(location: str) -> tuple[str, int]:
    path, line = location.rsplit(":", 1)
    return path, int(line)


def evaluate(output: Path, info: dict, texts: dict[tuple[str, int], str]) -> dict:
    """Recall over the planted pairs whose two copies both pass the filters before dedupe;
    precision over every `near_duplicate` reject of the build. Documents are (file, line):
    a copy is removed as a duplicate when every piece of it is an exact or near duplicate, and
    caught when it is linked (through `duplicate_of`, transitively) to its twin."""
    kept, rejects = read_output(output)
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(node):
        while parent.get(node, node) != node:
            parent[node] = parent.get(parent[node], parent[node])
            node = parent[node]
        return node

    for doc, items in rejects.items():
        for reject in items:
            if reject.reason in DEDUPE_REASONS and reject.duplicate_of:
                parent[find(doc)] = find(_doc(reject.duplicate_of))

    def passes(doc) -> bool:  # no piece dropped before dedupe (read, clean, split, quality)
        return (kept[doc] or doc in rejects) and not any(
            r.reason not in DEDUPE_REASONS and r.stage not in AFTER_DEDUPE_STAGES for r in rejects.get(doc, []))

    def removed_as_duplicate(doc) -> bool:
        items = rejects.get(doc, [])
        return not kept[doc] and bool(items) and all(r.reason in DEDUPE_REASONS for r in items)

    counts: dict[str, Counter] = defaultdict(Counter)
    groups: dict[str, Counter] = defaultdict(Counter)
    misses: dict[str, list] = defaultdict(list)
    for pair in info["pairs"]:
        a, b = tuple(pair["a"]), tuple(pair["b"])
        if pair["kind"] == "near":
            kind = "near" if pair["jaccard"] >= NEAR_THRESHOLD else "near_negative"
        elif pair["kind"] == "mojibake":
            kind = "mojibake" if pair["jaccard"] == 1.0 else "mojibake_unrepaired"
        else:
            kind = "exact"
        if not (passes(a) and passes(b)):
            counts[kind]["filtered"] += 1
            continue
        caught = (removed_as_duplicate(a) or removed_as_duplicate(b)) and find(a) == find(b)
        counts[kind]["pairs"] += 1
        counts[kind]["caught"] += caught
        if kind in ("exact", "mojibake", "near"):  # where the misses are: long documents, Chinese text
            group = ("exact" if kind == "mojibake" else kind) + (" >2000 chars" if pair["chars"] > 2000 else " <=2000 chars") \
                + (" zh" if CJK.search(texts[a]) else " en")
            groups[group]["pairs"] += 1
            groups[group]["caught"] += caught
        if not caught and kind in ("exact", "near", "mojibake"):
            misses[kind].append((pair["jaccard"], pair["chars"], a, b))

    # precision: each near_duplicate reject against the document it names as kept
    cleaned: dict[tuple[str, int], str] = {}

    def text_of(doc):
        if doc not in cleaned:
            cleaned[doc] = clean_text(texts[doc], CleanConfig())
        return cleaned[doc]

    near_rejects = [r for items in rejects.values() for r in items if r.reason == "near_duplicate"]
    good, low = 0, []
    for reject in near_rejects:
        mine, theirs = (reject.source_path, reject.source_line), _doc(reject.duplicate_of)
        value = jaccard(text_of(mine), text_of(theirs))
        if value < PRECISION_JACCARD:  # a piece of a longer document: the piece against the kept one's pieces
            kept_text = text_of(theirs)
            value = max([value, jaccard(reject.text, kept_text)]
                        + [jaccard(reject.text, piece) for piece in split_text(kept_text, 2000)])
        good += value >= PRECISION_JACCARD
        if value < PRECISION_JACCARD:
            low.append((round(value, 3), f"{mine[0]}:{mine[1]}#{reject.piece}", reject.duplicate_of))

    exact_pairs = counts["exact"]["pairs"] + counts["mojibake"]["pairs"]
    exact_caught = counts["exact"]["caught"] + counts["mojibake"]["caught"]
    missing_ans = [r for items in rejects.values() for r in items
                   if r.reason == "missing_ans" and ".jsonl" in r.source_path]
    reasons = Counter(f"{r.stage}/{r.reason}" for items in rejects.values() for r in items)
    return {
        "exact_recall": exact_caught / max(1, exact_pairs), "exact_pairs": exact_pairs,
        "near_recall": counts["near"]["caught"] / max(1, counts["near"]["pairs"]), "near_pairs": counts["near"]["pairs"],
        "near_precision": good / max(1, len(near_rejects)), "near_rejects": len(near_rejects),
        "jsonl_missing_ans": len(missing_ans),
        "counts": {k: dict(v) for k, v in counts.items()},
        "groups": {k: f"{v['caught']}/{v['pairs']}" for k, v in sorted(groups.items())},
        "misses": {k: sorted(v)[:8] for k, v in misses.items()},
        "low_precision": sorted(low)[:8],
        "reasons": dict(reasons.most_common()),
        "kept_pieces": sum(kept.values()),
    }


# --- report -------------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/work/scratch/corpus-bench", help="corpus cache, packages and outputs")
    parser.add_argument("--mb", type=float, default=60, help="corpus size cap (all the packages' text is ~54 MB)")
    parser.add_argument("--packages", default="/work/scratch/corpus-bench/root",
                        help="where the Debian packages are unpacked (downloaded into its sibling debs/)")
    parser.add_argument("--pairs", type=int, default=1200, help="planted pairs")
    parser.add_argument("--datatrove-python", default=None, help="python of a venv with datatrove installed")
    parser.add_argument("--skip-memory", action="store_true", help="skip the memory scaling runs")
    parser.add_argument("--only-memory", action="store_true", help="only the memory scaling runs")
    parser.add_argument("--evaluate-only", action="store_true", help="only score the last build's output (no run)")
    parser.add_argument("--skip-stages", action="store_true", help="skip the per-stage CPU seconds pass")
    args = parser.parse_args()
    work = Path(args.work)
    packages = Path(args.packages)
    if args.only_memory:
        return memory_scaling(work, packages, args.mb, args.pairs)
    corpus = work / "corpus"
    info = make_corpus(corpus, packages, args.mb, args.pairs)
    texts = read_texts(corpus)
    mb = sum(len(t.encode()) for t in texts.values()) / (1 << 20)
    zh = sum(v for k, v in info["by_source"].items() if "zh" in k.lower()) / (1 << 20)
    kinds = Counter(p["kind"] for p in info["pairs"])
    near = [p for p in info["pairs"] if p["kind"] == "near"]
    print(f"corpus: {mb:.1f} MB of text ({zh:.1f} MB from Chinese sources) in {len(texts)} documents, "
          f"{info['file_bytes'] / (1 << 20):.1f} MB on disk in {len(info['files'])} files; "
          f"JSONL half {info['halves']['jsonl'] / (1 << 20):.1f} MB, txt half {info['halves']['txt'] / (1 << 20):.1f} MB; "
          f"{info['long_documents']} documents over 2,000 characters")
    print(f"planted pairs (copies in the other half): {kinds['exact']} exact, {kinds['mojibake']} mojibake "
          f"({info['mojibake_repaired']} repaired by the clean stage to an exact copy), {len(near)} near "
          f"({sum(p['jaccard'] >= NEAR_THRESHOLD for p in near)} with char-5-gram Jaccard >= {NEAR_THRESHOLD}, "
          f"{sum(p['jaccard'] < NEAR_THRESHOLD for p in near)} below as negatives)")
    print("command: bee", " ".join(build_command(corpus, work / "out" / "bench")[3:]))

    stages: dict[str, float] = {}
    if args.evaluate_only:
        quality = evaluate(work / "out" / "bench", info, texts)
        print_quality(quality)
        return print_targets(quality, None)
    load_before = os.getloadavg()[0]
    seconds, peaks, cpu, _, log = run_build(corpus, work / "out" / "bench")
    build_load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    build_cpu = sum(cpu.values())
    summary = json.loads((work / "out" / "bench" / "report.json").read_text())
    workers = sorted(round(v, 1) for k, v in cpu.items() if k and v > 0.5)
    print(f"build: {seconds:.1f} s wall = {mb / seconds:.2f} MB/s, {build_cpu:.1f} CPU-s = {build_cpu / mb:.3f} CPU-s/MB "
          f"(driver {cpu.get(0, 0):.1f}, worker processes {workers}); written {summary.get('written')}, "
          f"rejected {summary.get('rejected')}, balanced {summary.get('balanced')}; {build_load}")
    print(f"  peak RSS: driver {peaks[0] / 2**20:.0f} MB, workers",
          sorted(round(v / 2**20) for k, v in peaks.items() if k and v > 50 << 20), "MB")
    summary_lines = [line for line in log.splitlines() if line.strip()][-4:]
    print("  build's own summary (last lines):", " | ".join(" ".join(l.split()) for l in summary_lines))

    if not args.skip_stages:
        try:
            stages = stage_cpu_seconds(corpus, work / "out" / "bench")
        except (ImportError, AttributeError, TypeError, ValueError) as error:  # internals move; the rest still counts
            stages = {}
            print(f"per-stage CPU seconds unavailable ({type(error).__name__}: {error}): the per-file chain changed shape")
    if stages:
        per_file = sum(stages.values())
        print("per-stage CPU seconds (the build's per-file stage DoFns over the whole corpus, one core, in this process):")
        for name, value in stages.items():
            print(f"  {name:28s} {value:7.2f} CPU-s  {value / mb:6.3f} CPU-s/MB  {100 * value / per_file:5.1f}%")
        print(f"  {'per-file stages together':28s} {per_file:7.2f} CPU-s; the build's CPU minus this "
              f"(dedupe, finish, packing, report, start-up, runner): {build_cpu - per_file:.1f} CPU-s")

    quality = evaluate(work / "out" / "bench", info, texts)
    print_quality(quality)

    speedup = None
    if args.datatrove_python:
        load_before = os.getloadavg()[0]
        dt_seconds, dt_inner, dt_cpu = run_datatrove(args.datatrove_python, texts, work / "datatrove")
        speedup = dt_seconds / seconds
        print(f"datatrove MinHash dedupe only (FineWeb defaults, input in 2 files, 2 tasks/workers): {dt_seconds:.1f} s wall "
              f"({dt_inner:.1f} s inside its script) = {mb / dt_seconds:.2f} MB/s, {dt_cpu:.1f} CPU-s = {dt_cpu / mb:.3f} CPU-s/MB; "
              f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
        print(f"ours end-to-end / datatrove dedupe-only: {speedup:.2f}x wall, {dt_cpu / build_cpu:.2f}x per CPU-second")
    print_targets(quality, speedup)
    if not args.skip_memory:
        memory_scaling(work, packages, args.mb, args.pairs)


def print_quality(quality: dict) -> None:
    print("pair counts by kind (pairs: both copies pass the filters before dedupe; filtered: one does not):",
          json.dumps(quality["counts"]))
    print("recall by group (caught/pairs):", json.dumps(quality["groups"]))
    print("rejects by stage/reason:", json.dumps(quality["reasons"]))
    for kind, misses in quality["misses"].items():
        print(f"  missed {kind} pairs (jaccard, chars, original, copy), first 8:", misses)
    if quality["low_precision"]:
        print("  near_duplicate rejects below Jaccard 0.7 with their kept copy, first 8:", quality["low_precision"])


def print_targets(quality: dict, speedup: float | None) -> None:
    print("\nfigure                                   ours        target")
    rows = [
        ("exact-duplicate recall", f"{quality['exact_recall']:.3f} ({quality['exact_pairs']} pairs)", "1.0",
         quality["exact_recall"] >= TARGETS["exact_recall"]),
        ("near-duplicate recall (J >= 0.8)", f"{quality['near_recall']:.3f} ({quality['near_pairs']} pairs)", ">= 0.95",
         quality["near_recall"] >= TARGETS["near_recall"]),
        ("near-duplicate precision (J >= 0.7)", f"{quality['near_precision']:.3f} ({quality['near_rejects']} rejects)",
         ">= 0.95", quality["near_precision"] >= TARGETS["near_precision"]),
        ("JSONL documents rejected missing_ans", str(quality["jsonl_missing_ans"]), "0", quality["jsonl_missing_ans"] == 0),
    ]
    if speedup is not None:
        rows.append(("throughput vs datatrove dedupe (wall)", f"{speedup:.2f}x", ">= 3x", speedup >= TARGETS["speedup"]))
    for name, value, target, ok in rows:
        print(f"{name:40s} {value:28s} {target:8s} {verdict(ok)}")


def memory_scaling(work: Path, packages: Path, mb: float, pairs: int) -> None:
    """Peak RSS of the driver and of the busiest other process at a quarter, half and all of the
    corpus, and the busiest process's peak in each phase of the build (same command line)."""
    for fraction in (0.25, 0.5, 1.0):
        size = mb * fraction
        corpus = work / ("corpus" if fraction == 1.0 else f"corpus-{size:.0f}")
        info = make_corpus(corpus, packages, size, int(pairs * fraction))
        real = info["text_bytes"] / (1 << 20)
        seconds, peaks, _, phases, _ = run_build(corpus, work / f"out-{size:.0f}" / "bench")
        others = [v for k, v in peaks.items() if k] or [0]
        by_phase = ", ".join(f"{name} {phases[name] / 2**20:.0f}" for name in ("per-file", "dedupe", "finish") if name in phases)
        print(f"memory at {real:.0f} MB of corpus: busiest process {max(max(others), peaks[0]) / 2**20:.0f} MB ({by_phase}), "
              f"driver {peaks[0] / 2**20:.0f} MB, max worker {max(others) / 2**20:.0f} MB ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
