"""Figures of the language, PII and decontamination stages (not a test): CPU-s/MB of each on
the benchmark corpus of bench_corpus.py, the language and PII labels it gets, PII precision /
recall on the labelled set of the tests, and decontamination hits with the CCPM sample planted
into the corpus and used as the evaluation set.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_corpus_stages.py \\
        --corpus /work/scratch/corpus-bench/corpus-15 --ccpm ../shared/cpm-bee/ccpm_eval.jsonl

The corpus is read and cleaned by the build's own read and clean stages; each stage is then
timed alone on the cleaned documents, one core, in this process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from corpus.pipeline.clean import CleanText  # noqa: E402
from corpus.pipeline.decontaminate import build_index, compared_texts, find_contamination  # noqa: E402
from corpus.pipeline.file_chain import run_stages  # noqa: E402
from corpus.pipeline.language import IdentifyLanguage  # noqa: E402
from corpus.pipeline.pii import RedactPii  # noqa: E402
from corpus.pipeline.read import ReadFileLines, list_input_files  # noqa: E402
from corpus.pipeline.units import text_units  # noqa: E402
from schemas import Record  # noqa: E402
from schemas.build_config import CleanConfig, DecontaminationConfig, LanguageConfig, PiiConfig, ReadConfig  # noqa: E402
from tests.corpus.pipeline.test_pipeline_pii import precision_recall  # noqa: E402


def cleaned_documents(corpus: Path) -> list[Record]:
    read = ReadConfig()
    stages = [ReadFileLines(read), CleanText(CleanConfig())]
    for stage in stages:
        stage.setup()
    records: list[Record] = []
    files, _ = list_input_files([str(corpus)], read)
    for file in files:
        records += run_stages(stages, [file]).records
    return records


def timed(fn, records: list[Record]) -> tuple[float, list]:
    start = time.process_time()
    out = [fn(record) for record in records]
    return time.process_time() - start, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default="/work/scratch/corpus-bench/corpus-15")
    parser.add_argument("--ccpm", default=str(REPO.parent / "shared" / "cpm-bee" / "ccpm_eval.jsonl"))
    args = parser.parse_args()

    records = cleaned_documents(Path(args.corpus))
    mb = sum(len(r.text.encode()) for r in records) / 1e6
    print(f"corpus: {len(records)} documents, {mb:.1f} MB of cleaned text ({args.corpus})")

    language = IdentifyLanguage(LanguageConfig())
    language.setup()
    seconds, results = timed(language.process_record, records)
    labels = Counter((kept or reject).language if kept else "rejected:" + reject.detail.split(" ")[0] for kept, reject in results)
    print(f"language: {seconds / mb:.3f} CPU-s/MB; labels {dict(labels.most_common(8))}")

    pii = RedactPii(PiiConfig(enabled=True))
    pii.setup()
    seconds, results = timed(pii.process_record, records)
    found = Counter()
    for kept, _ in results:
        found.update(kept.pii)
    print(f"pii: {seconds / mb:.3f} CPU-s/MB; redacted {dict(found)} in {sum(1 for k, _ in results if k.pii)} documents")
    precision, recall, mistakes = precision_recall()
    print(f"pii labelled set: precision {precision:.3f} recall {recall:.3f} mistakes {mistakes}")

    config = DecontaminationConfig(eval_sets=[args.ccpm])
    start = time.process_time()
    index = build_index(config)
    print(f"decontamination index: {len(index.hashes)} n-grams of {len(index.labels)} items, "
          f"{index.hashes.nbytes + index.items.nbytes} bytes, {time.process_time() - start:.2f} CPU-s; "
          f"short lengths {index.short_lengths}; template n-grams left out {index.templates_left_out}")
    seconds, hits = timed(lambda r: find_contamination(r.text, index, config), records)
    false_hits = [(r.source_path, r.source_line, index.labels[h[0]], h[2]) for r, h in zip(records, hits) if h]
    print(f"decontamination: {seconds / mb:.3f} CPU-s/MB; hits on the corpus itself: {len(false_hits)} {false_hits[:5]}")
    items = [json.loads(line) for line in Path(args.ccpm).read_text(encoding="utf-8").splitlines()]
    planted = [Record(source_path="planted.jsonl", source_line=n, kind="json", data=item,
                      text="\n".join(v for v in compared_texts(item)[:-1])) for n, item in enumerate(items, 1)]
    prose = [Record(source_path="prose.txt", source_line=n, kind="text",
                    text=records[n].text[:300] + item["input"] + records[n + 1].text[:300])
             for n, item in enumerate(items, 1) if len(text_units(item["input"])) >= config.min_tokens]
    found_whole = sum(1 for r in planted if (h := find_contamination(r.text, index, config)) and index.labels[h[0]] == f"ccpm_eval.jsonl:{r.source_line}")
    found_prose = 0
    for r in prose:  # found: the item named has this input (a few inputs are shared by several items)
        h = find_contamination(r.text, index, config)
        found_prose += bool(h) and items[int(index.labels[h[0]].rsplit(":", 1)[1]) - 1]["input"] == items[r.source_line - 1]["input"]
    print(f"planted CCPM items found (as structured samples, own item named): {found_whole} / {len(planted)}; "
          f"an item's input ({config.min_tokens}+ characters) inside corpus prose: {found_prose} / {len(prose)}")


if __name__ == "__main__":
    main()
