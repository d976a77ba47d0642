"""Near-dedupe shingles: how well each `near_dedupe.shingles` setting finds pairs whose
character 5-gram Jaccard (of the whitespace-collapsed text: the issue's definition of a near
duplicate) is >= 0.8, and what its signatures cost. Outside the default test run.

Pairs: a passage of real English (this repository's READMEs) or Chinese (a Chinese Debian
manual when installed, else skipped) and a copy with words (English) or characters (Chinese)
replaced at the rates bench_corpus.py plants (0.2% to 5%). A pair is found when it shares an
LSH band (14 x 8) and the signatures agree on >= `threshold`, as dedupe_minhash.py decides.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/bench_near_dedupe_shingles.py
"""

from __future__ import annotations

import gzip
import random
import time
from pathlib import Path

import numpy as np

from corpus.pipeline.dedupe_minhash import band_keys, bands_and_rows
from corpus.pipeline.fingerprint import MinHasher, shingle_text
from schemas.build_config import NearDedupeConfig

REPO = Path(__file__).resolve().parents[2]
RATES = [0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05]
PAIRS = 600


def char_jaccard(a: str, b: str, n: int = 5) -> float:
    sa, sb = shingle_text(a), shingle_text(b)
    ga = {sa[i:i + n] for i in range(len(sa) - n + 1)}
    gb = {sb[i:i + n] for i in range(len(sb) - n + 1)}
    return len(ga & gb) / len(ga | gb)


def english_pairs(rng: random.Random) -> list[tuple[str, str]]:
    words = " ".join(p.read_text(encoding="utf-8") for p in sorted(REPO.glob("**/README.md"))).split()
    pairs = []
    for _ in range(PAIRS):
        start, n = rng.randrange(len(words) - 400), rng.randrange(80, 350)
        text = " ".join(words[start:start + n])
        rate = rng.choice(RATES)
        copy = " ".join(f"edit{rng.randrange(10**6)}" if rng.random() < rate else w for w in text.split(" "))
        pairs.append((text, copy))
    return pairs


def chinese_pairs(rng: random.Random) -> list[tuple[str, str]]:
    files = sorted(Path("/usr/share/doc").glob("**/*zh_CN*.txt*")) + sorted(Path("/usr/share/man/zh_CN").glob("**/*.gz"))
    text = ""
    for path in files[:200]:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
        text += "".join(ch for ch in raw.decode("utf-8", "ignore") if "\u4e00" <= ch <= "\u9fff")
    if len(text) < 5000:
        return []
    pairs = []
    for _ in range(PAIRS):
        start, n = rng.randrange(len(text) - 1200), rng.randrange(150, 1000)
        passage = text[start:start + n]
        rate = rng.choice(RATES)
        copy = "".join(rng.choice(text) if rng.random() < rate else ch for ch in passage)
        pairs.append((passage, copy))
    return pairs


def measure(name: str, pairs: list[tuple[str, str]], config: NearDedupeConfig) -> None:
    hasher = MinHasher(config)
    bands, rows = bands_and_rows(config)
    started = time.process_time()
    signatures = [(hasher.signature(a), hasher.signature(b)) for a, b in pairs]
    seconds = time.process_time() - started
    megabytes = sum(len(a.encode()) + len(b.encode()) for a, b in pairs) / 1e6
    found = positives = false_found = 0
    lowest = 1.0
    for (a, b), (x, y) in zip(pairs, signatures):
        jaccard = char_jaccard(a, b)
        truth = jaccard >= 0.8
        candidate = any(k == l for k, l in zip(band_keys(x, bands, rows), band_keys(y, bands, rows)))
        hit = candidate and float(np.mean(np.frombuffer(x, "<u4") == np.frombuffer(y, "<u4"))) >= config.threshold
        positives += truth
        found += truth and hit
        false_found += hit and not truth
        if hit:
            lowest = min(lowest, jaccard)
    print(f"{name:8s} shingles={config.shingles:16s} recall {found / max(1, positives):.3f} over {positives} pairs "
          f"with char-5-gram Jaccard >= 0.8; found below 0.8: {false_found} (lowest {lowest:.2f}); signatures {seconds / megabytes:.3f} CPU-s/MB")


def main() -> None:
    for name, pairs in (("english", english_pairs(random.Random(1))), ("chinese", chinese_pairs(random.Random(2)))):
        if not pairs:
            print(f"{name}: no text found, skipped")
            continue
        for shingles in ("chars", "words_and_chars"):
            measure(name, pairs, NearDedupeConfig(shingles=shingles))


if __name__ == "__main__":
    main()
