"""Corpus pipeline figures (not a test): throughput, per-stage time, dedupe recall/precision,
worker memory as the corpus doubles, and datatrove's MinHash dedupe on the same text.

    .venv/bin/python tests/benchmarks/bench_corpus.py --work /work/scratch/corpus-bench \
        [--mb 60] [--datatrove-python /work/scratch/corpus-bench/dtvenv/bin/python]

The corpus is real text nobody here wrote: Debian documentation installed with apt-get
(`manpages-zh`, `debian-reference-zh-cn`, `debian-reference-en`, `debian-edu-doc-zh-cn`,
English man pages, /usr/share/doc), one document a line (`<n>` for newlines, as CPM-Bee's
txt format), plus planted exact and near duplicates whose true Jaccard is computed here.
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import random
import re
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import psutil
import zstandard

from corpus.pipeline.clean import clean_text, html_to_text
from corpus.pipeline.fingerprint import MinHasher, content_hash, shingles
from corpus.pipeline.quality import build_checks, judge
from corpus.pipeline.read import txt_line_to_text
from corpus.pipeline.split import split_text
from corpus.pipeline.escape import escape_text
from corpus.pipeline.shards import REJECTS_SUFFIX, RECORDS_SUFFIX, list_shards, read_records, read_rejects
from schemas import Record
from schemas.build_config import CleanConfig, ExactDedupeConfig, NearDedupeConfig, QualityConfig

REPO = Path(__file__).resolve().parents[2]
QUALITY = QualityConfig()
QUALITY_CHECKS = build_checks(QUALITY)
_TROFF_MACRO = re.compile(r"^[.'][A-Za-z]{1,3}\s?")
_TROFF_ESCAPE = re.compile(r"\\f[BIRP]|\\f\(..|\\\(..|\\[&|^%]|\\s[+-]?\d")


def troff_to_text(source: str) -> str:
    lines = []
    for line in source.splitlines():
        if line.startswith(('.\\"', "'\\\"", ".TH", ".so", ".de", ".ig")):
            continue
        line = _TROFF_ESCAPE.sub("", _TROFF_MACRO.sub("", line)).replace("\\-", "-").replace("\\e", "\\")
        if line.strip():
            lines.append(line.strip())
    return "\n".join(lines)


def read_maybe_gz(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except OSError:
            return ""
    return data.decode("utf-8", errors="ignore")


def documents():
    """(label, text) of real documents, Chinese sources first, in a fixed order."""
    for path in sorted(Path("/usr/share/man/zh_CN").rglob("*.gz")):
        yield "zh-man", troff_to_text(read_maybe_gz(path))
    for pattern in ("/usr/share/debian-reference/*.zh-cn.html", "/usr/share/doc/debian-edu-doc-zh-cn/*.html",
                    "/usr/share/debian-reference/*.en.html"):
        for path in sorted(Path("/").glob(pattern.lstrip("/"))):
            text = html_to_text(read_maybe_gz(path))
            # chapters are long: one document per section-sized chunk of paragraphs
            for chunk in re.split(r"\n\s*\n\s*\n", text):
                yield ("zh" if "zh" in pattern else "en") + "-html", html.unescape(chunk)
    # English: man pages (prose-like) before /usr/share/doc (changelogs and licences, repetitive)
    for section in range(1, 9):
        for path in sorted(Path(f"/usr/share/man/man{section}").glob("*.gz")):
            yield "en-man", troff_to_text(read_maybe_gz(path))
    for path in sorted(Path("/usr/share/doc").rglob("*")):
        if path.is_file() and (path.name.startswith(("changelog", "NEWS", "README", "copyright")) or path.suffix == ".txt"):
            yield "en-doc", read_maybe_gz(path)


def to_line(text: str) -> str:
    return text.strip().replace("\r", "").replace("\n", "<n>")


def jaccard(a: str, b: str, config: NearDedupeConfig) -> float:
    sa, sb = shingles(a, config), shingles(b, config)
    return len(sa & sb) / max(1, len(sa | sb))


def mutate(text: str, rate: float, rng: random.Random) -> str:
    words = text.split(" ")
    for index in rng.sample(range(len(words)), k=int(len(words) * rate)):
        words[index] = f"edit{rng.randrange(10**6)}"
    return " ".join(words)


def make_corpus(root: Path, target_mb: float, planted: int = 600) -> dict:
    """Write the corpus; returns the planted pairs with their true Jaccard."""
    if root.exists():
        shutil.rmtree(root)
    (root / "docs").mkdir(parents=True)
    rng = random.Random(1234)
    shard, shard_bytes, total, index = [], 0, 0, 0
    sizes: dict[str, int] = {}
    candidates: list[str] = []

    def flush():
        nonlocal shard, shard_bytes, index
        body = ("\n".join(shard) + "\n").encode()
        kind = index % 3
        name = root / "docs" / f"part-{index:04d}.txt"
        if kind == 1:
            name.with_suffix(".txt.gz").write_bytes(gzip.compress(body, 6))
        elif kind == 2:
            name.with_suffix(".txt.zst").write_bytes(zstandard.ZstdCompressor().compress(body))
        else:
            name.write_bytes(body)
        shard, shard_bytes, index = [], 0, index + 1

    for label, text in documents():
        line = to_line(text)
        if len(line) < 200:
            continue
        size = len(line.encode())
        shard.append(line)
        shard_bytes += size
        total += size
        sizes[label] = sizes.get(label, 0) + size
        if 1500 < len(line) < 6000 and rng.random() < 0.3 and len(candidates) < 4 * planted:
            # a base must survive cleaning and the quality filter, or there is nothing to measure
            if judge(clean_text(txt_line_to_text(line)[:1800], CleanConfig()), QUALITY, QUALITY_CHECKS)[0]:
                candidates.append(line)
        if shard_bytes > 4 << 20:
            flush()
        if total > target_mb * (1 << 20):
            break
    if shard:
        flush()
    # Planted pairs: bases in zz-planted/base.txt, copies in zz-planted/copies.txt (sorted later,
    # so the base is the earliest and must be the one kept).
    config = NearDedupeConfig()
    bases = rng.sample(candidates, k=min(planted, len(candidates)))
    bases = [b[:1800] for b in bases]
    pairs, base_lines, copy_lines = [], [], []
    for i, base in enumerate(bases):
        text = f"planted {i} " + txt_line_to_text(base)
        kind = "exact" if i % 4 == 0 else "near"
        copy = text if kind == "exact" else mutate(text, rng.choice([0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05]), rng)
        base_lines.append(to_line(text))
        copy_lines.append(to_line(copy))
        pairs.append({"base_line": i + 1, "copy_line": i + 1, "kind": kind,
                      "jaccard": 1.0 if kind == "exact" else jaccard(clean_text(text, CleanConfig()), clean_text(copy, CleanConfig()), config)})
    (root / "zz-planted").mkdir()
    (root / "zz-planted" / "base.txt").write_text("\n".join(base_lines) + "\n", encoding="utf-8")
    (root / "zz-planted" / "copies.txt").write_text("\n".join(copy_lines) + "\n", encoding="utf-8")
    total += sum(len(l.encode()) for l in base_lines + copy_lines)
    return {"bytes": total, "by_source": sizes, "pairs": pairs}


def watch(process: psutil.Popen, phase=None) -> tuple[dict[int, int], dict[int, float], dict[str, int]]:
    """Poll `process` and its descendants until it exits; returns peak RSS and last-seen CPU
    seconds (user + system) per process, key 0 for `process` itself, and, when `phase` (a
    function naming the build's current phase) is given, the busiest worker's peak RSS in each
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
                    if label and key:
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
    (the global stages: exact dedupe, MinHash LSH, connected components) until the first
    record shard appears, then "finish" (verdicts applied, shards written)."""
    inputs = sum(1 for path in input_dir.rglob("*") if path.is_file())
    prepared = output.with_name(output.name + ".work") / "prepared"
    shards = output.with_name(output.name + ".building") / "arrow"

    def phase() -> str:
        if len(list(prepared.glob("*.done.json"))) < inputs:
            return "per-file"
        return "finish" if shards.exists() and any(shards.iterdir()) else "dedupe"

    return phase


def run_build(input_dir: Path, output: Path, workers: int) -> tuple[float, dict[int, int], dict[int, float], dict[str, int]]:
    """`bee corpus build` in a subprocess; returns (seconds, peak RSS and CPU seconds per
    process (key 0 is the driver), the busiest worker's peak RSS per phase)."""
    for path in (output, output.with_name(output.name + ".work"), output.with_name(output.name + ".building")):
        shutil.rmtree(path, ignore_errors=True)
    command = [str(REPO / ".venv/bin/bee"), "corpus", "build", "--input", str(input_dir), "--output", str(output),
               "--dataset-name", "bench", "--task-name", "bench", f"--direct_num_workers={workers}",
               "--direct_running_mode=" + ("multi_processing" if workers > 1 else "in_memory")]
    log = output.with_name(output.name + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "w") as stderr:  # a file, not a pipe, which could fill up and stall the build
        process = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        peaks, cpu, phase_peaks = watch(process, build_phase(input_dir, output))
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(log.read_text()[-3000:])
    return seconds, peaks, cpu, phase_peaks


def stage_times(corpus: Path, sample_mb: float = 4.0) -> dict[str, float]:
    """Seconds per MB (one core) of each stage's function over a sample of the corpus."""
    lines = []
    for path in sorted((corpus / "docs").glob("part-*.txt")):
        lines += path.read_text(encoding="utf-8").splitlines()
        if sum(map(len, lines)) > sample_mb * (1 << 20):
            break
    mb = sum(len(l.encode()) for l in lines) / (1 << 20)
    timings: dict[str, float] = {}

    def timed(name, fn, items):
        start = time.perf_counter()
        out = [fn(x) for x in items]
        timings[name] = (time.perf_counter() - start) / mb
        return out

    texts = timed("read (txt rules)", txt_line_to_text, lines)
    texts = timed("clean", lambda t: clean_text(t, CleanConfig()), texts)
    start = time.perf_counter()
    pieces = [p for t in texts for p in split_text(t, 2000)]
    timings["split"] = (time.perf_counter() - start) / mb
    quality = QualityConfig()
    checks = build_checks(quality)
    timed("quality", lambda t: judge(t, quality, checks), pieces)
    records = [Record(source_path="x", source_line=1, kind="text", text=t) for t in pieces]
    timed("exact hash", lambda r: content_hash(r, ExactDedupeConfig()), records)
    hasher = MinHasher(NearDedupeConfig())
    timed("minhash signature", hasher.signature, pieces)
    timed("escape", escape_text, pieces)
    return timings


def evaluate(output: Path, pairs: list[dict]) -> dict:
    kept = {}
    for source, url in list_shards(str(output / "arrow"), RECORDS_SUFFIX):
        if source.startswith("zz-planted/"):
            for r in read_records(url):
                kept[(source, r.source_line)] = r
    rejects = {}
    near_rejects = []
    for source, url in list_shards(str(output / "rejects"), REJECTS_SUFFIX):
        for r in read_rejects(url):
            if source.startswith("zz-planted/"):
                rejects[(source, r.source_line)] = r
            if r.reason == "near_duplicate":
                near_rejects.append(r)
    tp = fp = fn = 0
    exact_found = exact_total = 0
    for pair in pairs:
        base = ("zz-planted/base.txt", pair["base_line"])
        copy = ("zz-planted/copies.txt", pair["copy_line"])
        # The base is a slice of a corpus document, so it may itself be a duplicate of that
        # document (which comes earlier): then the copy belongs to the document's cluster.
        base_reject = rejects.get(base)
        if base in kept:
            roots = {f"{base[0]}:{base[1]}"}
        elif base_reject is not None and base_reject.duplicate_of:
            roots = {f"{base[0]}:{base[1]}", base_reject.duplicate_of}
        else:
            continue  # the base was filtered out: no ground truth
        reject = rejects.get(copy)
        caught = reject is not None and reject.reason in ("near_duplicate", "exact_duplicate") \
            and reject.duplicate_of in roots
        if pair["kind"] == "exact":
            exact_total += 1
            exact_found += caught
            continue
        positive = pair["jaccard"] >= 0.8
        tp += caught and positive
        fp += caught and not positive
        fn += positive and not caught
    return {
        "exact_recall": exact_found / max(1, exact_total), "exact_pairs": exact_total,
        "near_recall": tp / max(1, tp + fn), "near_precision": tp / max(1, tp + fp),
        "near_positive_pairs": tp + fn, "near_negative_pairs_caught": fp,
        "near_pairs": sum(1 for p in pairs if p["kind"] == "near"),
        "near_duplicate_rejects_total": len(near_rejects),
    }


DATATROVE_SCRIPT = textwrap.dedent('''
    import sys, time
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupSignature, MinhashDedupBuckets,
                                                  MinhashDedupCluster, MinhashDedupFilter)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    def main():  # datatrove's workers are spawned processes: everything below __main__
        src, work, tasks = sys.argv[1], sys.argv[2], int(sys.argv[3])
        config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
        t0 = time.monotonic()
        LocalPipelineExecutor(pipeline=[JsonlReader(src), MinhashDedupSignature(output_folder=f"{work}/sigs", config=config)],
                              tasks=tasks, workers=tasks, logging_dir=f"{work}/logs/s").run()
        LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets", config=config)],
                              tasks=config.num_buckets, workers=tasks, logging_dir=f"{work}/logs/b").run()
        LocalPipelineExecutor(pipeline=[MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove_ids", config=config)],
                              tasks=1, logging_dir=f"{work}/logs/c").run()
        LocalPipelineExecutor(pipeline=[JsonlReader(src), MinhashDedupFilter(input_folder=f"{work}/remove_ids"),
                                        JsonlWriter(f"{work}/out")], tasks=tasks, workers=tasks, logging_dir=f"{work}/logs/f").run()
        print("SECONDS", time.monotonic() - t0)

    if __name__ == "__main__":
        main()
''')


def run_datatrove(python: str, corpus: Path, work: Path, tasks: int = 2) -> tuple[float, float]:
    """datatrove MinHash dedupe (FineWeb defaults) over the same samples as JSONL; returns
    (seconds, CPU seconds of its processes)."""
    shutil.rmtree(work, ignore_errors=True)
    src = work / "src"
    src.mkdir(parents=True)
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    for index, path in enumerate(files):
        text = read_maybe_gz(path) if path.suffix == ".gz" else (
            zstandard.ZstdDecompressor().stream_reader(path.open("rb")).read().decode("utf-8", "ignore")
            if path.suffix == ".zst" else path.read_text(encoding="utf-8"))
        with open(src / f"{index:04d}.jsonl", "w", encoding="utf-8") as out:
            for n, line in enumerate(text.splitlines()):
                out.write(json.dumps({"id": f"{index}-{n}", "text": txt_line_to_text(line)}, ensure_ascii=False) + "\n")
    script = work / "dt.py"
    script.write_text(DATATROVE_SCRIPT)
    # output to files, not pipes: datatrove logs a lot, and a full pipe would stall it while polled
    with open(work / "stdout.txt", "w") as stdout, open(work / "stderr.txt", "w") as stderr:
        process = psutil.Popen([python, str(script), str(src), str(work / "run"), str(tasks)], stdout=stdout, stderr=stderr)
        _, cpu, _ = watch(process)
    if process.returncode != 0:
        raise RuntimeError((work / "stderr.txt").read_text()[-3000:])
    return float(re.search(r"SECONDS ([\d.]+)", (work / "stdout.txt").read_text()).group(1)), sum(cpu.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/work/scratch/corpus-bench")
    parser.add_argument("--mb", type=float, default=60)
    parser.add_argument("--datatrove-python", default=None)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--only-memory", action="store_true")
    args = parser.parse_args()
    work = Path(args.work)
    corpus = work / "corpus"
    if args.only_memory:
        return memory_scaling(work, args.mb)
    info = make_corpus(corpus, args.mb)
    mb = info["bytes"] / (1 << 20)
    print(f"corpus: {mb:.1f} MB ({', '.join(f'{k} {v / (1 << 20):.1f} MB' for k, v in info['by_source'].items())}), "
          f"{len(info['pairs'])} planted pairs")
    seconds, peaks, cpu, _ = run_build(corpus, work / "out" / "bench", workers=2)
    summary = json.loads((work / "out" / "bench" / "report.json").read_text())
    print(f"end-to-end build, DirectRunner multi_processing, 2 workers: {seconds:.1f} s = {mb / seconds:.2f} MB/s "
          f"{sum(cpu.values()):.1f} CPU-s = {sum(cpu.values()) / mb:.2f} CPU-s/MB (written {summary['written']}, rejected {summary['rejected']}, balanced {summary['balanced']})")
    print(f"  CPU-s: driver {cpu[0]:.1f}, workers", sorted(round(v, 1) for k, v in cpu.items() if k and v > 0.5))
    print(f"  peak RSS: driver {peaks[0] / 2**20:.0f} MB, workers",
          sorted(round(v / 2**20) for k, v in peaks.items() if k and v > 50 << 20), "MB")
    for stage, value in stage_times(corpus).items():
        print(f"  stage {stage:20s} {value:6.2f} s/MB (one core) = {1 / value if value else float('inf'):7.2f} MB/s")
    quality = evaluate(work / "out" / "bench", info["pairs"])
    print("dedupe vs planted pairs (true Jaccard on 5-token shingles, positive >= 0.8):", json.dumps(quality))
    if args.datatrove_python:
        dt_seconds, dt_cpu = run_datatrove(args.datatrove_python, corpus, work / "datatrove")
        print(f"datatrove MinHash dedupe only (5-grams, 14x8, 2 tasks/workers): {dt_seconds:.1f} s = {mb / dt_seconds:.2f} MB/s, "
              f"{dt_cpu:.1f} CPU-s = {dt_cpu / mb:.2f} CPU-s/MB (its CPU includes process start-up and writing the deduplicated JSONL)")
        print(f"ours end-to-end / datatrove dedupe-only: {dt_seconds / seconds:.2f}x wall, {dt_cpu / sum(cpu.values()):.2f}x per CPU-second")
    if not args.skip_memory:
        memory_scaling(work, args.mb)


def memory_scaling(work: Path, mb: float) -> None:
    """Peak RSS of the driver and of the busiest worker at mb/2, mb and 2 x mb of corpus, and the
    busiest worker's peak in each phase of the build."""
    for size in (mb / 2, mb, 2 * mb):
        corpus = work / f"corpus-{size:.0f}"
        real = make_corpus(corpus, size)["bytes"] / (1 << 20)
        seconds, peaks, _, phases = run_build(corpus, work / f"out-{size:.0f}" / "bench", workers=2)
        workers = [v for k, v in peaks.items() if k]
        by_phase = ", ".join(f"{name} {phases[name] / 2**20:.0f}" for name in ("per-file", "dedupe", "finish") if name in phases)
        print(f"memory at {real:.0f} MB of corpus: max worker RSS {max(workers) / 2**20:.0f} MB ({by_phase}), "
              f"driver {peaks[0] / 2**20:.0f} MB ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
