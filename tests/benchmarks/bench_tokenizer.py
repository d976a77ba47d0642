"""Tokenizer throughput, ours beside CPM-Bee's reference, on Chinese and English text.

    python tests/benchmarks/bench_tokenizer.py [--reference ../scratch/cpm-bee/src] [--vocab ../shared/cpm-bee/bee.txt]

Texts are encoded the way training encodes them, one segment per call (convert_data_to_id
encodes each key and value of a sample separately), and also as one long text:
- zh CCPM segments: every key and value of the CCPM sample (../shared/cpm-bee/ccpm_eval.jsonl),
  average 9 chars, many of them `<option_N>`; zh CCPM sentences: its inputs, options, questions.
- zh Debian docs paragraphs: the paragraphs of the Chinese Debian manuals installed as HTML
  (debian-reference-zh-cn, debian-faq-zh-cn, debian-edu-doc-zh-cn; about 4,000 distinct
  paragraphs that are mostly Chinese); skipped when none of them is installed.
- en pydoc: the English pydoc topics that ship with Python, by paragraph and as one text.
Each figure is the best of --repeat passes with a fresh tokenizer (so the pure-Python engine's
chunk cache starts empty) and the garbage collector off, as timeit does. The reference runs
when its source is found (best of --repeat, except on a single long text, where
it is quadratic); otherwise its anchor (140 k chars/s) is printed.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))

from compare_tokenizer_reference import (  # noqa: E402
    DEFAULT_CCPM, DEFAULT_REFERENCE, DEFAULT_VOCAB, ccpm_samples, ccpm_texts, debian_zh_paragraphs, english_text,
    load_reference,
)

from tokenization import CPMBeeTokenizer, convert_data_to_id  # noqa: E402
from tokenization.longest_match import compiled_available  # noqa: E402

REFERENCE_ANCHOR_CHARS_PER_S = 140_000


def timed(run: Callable[[], Any]) -> float:
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        run()
        return time.perf_counter() - t0
    finally:
        gc.enable()


class encode_all:
    """Encodes every unit with `tok`; keeps the last pass's ids for the equality check."""

    def __init__(self, tok: Any, units: list[str]) -> None:
        self.tok = tok
        self.units = units
        self.ids: list[list[int]] = []

    def __call__(self) -> None:
        encode = self.tok.encode
        self.ids = [encode(u)[0] for u in self.units]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", default=str(DEFAULT_REFERENCE))
    parser.add_argument("--vocab", default=str(DEFAULT_VOCAB))
    parser.add_argument("--ccpm", default=str(DEFAULT_CCPM))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not Path(args.vocab).exists():
        print(f"official vocab not found at {args.vocab}; pass --vocab")
        return 1
    engines = ["c", "python"] if compiled_available() else ["python"]
    for engine in engines:
        t0 = time.perf_counter()
        CPMBeeTokenizer(args.vocab, engine=engine)
        print(f"tokenizer load ({engine} engine): {time.perf_counter() - t0:.2f} s")

    samples = ccpm_samples(Path(args.ccpm)) if Path(args.ccpm).exists() else []
    corpora: dict[str, list[str]] = {}
    if samples:
        corpora["zh CCPM segments"] = ccpm_texts(samples)
        corpora["zh CCPM sentences"] = [
            t for s in samples for t in (s["input"], s["question"], *s["options"].values())
        ]
        corpora["zh CCPM one text"] = ["\n".join(corpora["zh CCPM sentences"])]
    debian_zh = debian_zh_paragraphs()
    if debian_zh:
        corpora["zh Debian docs paragraphs"] = debian_zh
    else:
        print("zh Debian docs paragraphs: skipped (no Chinese Debian manual installed under /usr/share)")
    english = english_text()
    corpora["en pydoc paragraphs"] = [p for p in english.split("\n\n") if p]
    corpora["en pydoc one text"] = [english]

    ref = ref_convert = None
    if Path(args.reference).exists():
        ref, ref_convert = load_reference(Path(args.reference), Path(args.vocab))
    else:
        print(f"reference not found at {args.reference}: printing its anchor instead")

    cols = "".join(f"{e + ' chars/s':>16}" for e in engines)
    print(f"{'text':27}{'calls':>7}{'chars':>10}{cols}{'tokens/s':>12}{'reference':>12}{'speed-up':>10}")
    for name, units in corpora.items():
        chars = sum(map(len, units))
        rates = []
        for engine in engines:
            best = min(timed(encode_all(CPMBeeTokenizer(args.vocab, engine=engine), units))
                       for _ in range(args.repeat))
            rates.append(chars / best)
        ours = encode_all(CPMBeeTokenizer(args.vocab), units)
        ours()
        ntokens = sum(map(len, ours.ids))
        if ref is not None:
            # Best of --repeat too, except for one long text (quadratic there: tens of seconds).
            ref_repeat = args.repeat if len(units) > 1 else 1
            theirs = encode_all(ref, units)
            ref_rate = chars / min(timed(theirs) for _ in range(ref_repeat))
            assert theirs.ids == ours.ids, f"{name}: ids differ from the reference"
            ref_label = f"{ref_rate:,.0f}"
        else:
            ref_rate = REFERENCE_ANCHOR_CHARS_PER_S
            ref_label = f"({ref_rate // 1000}k)"
        cells = "".join(f"{r:>16,.0f}" for r in rates)
        print(f"{name:27}{len(units):>7,}{chars:>10,}{cells}{ntokens * rates[0] / chars:>12,.0f}"
              f"{ref_label:>12}{rates[0] / ref_rate:>9.1f}x")

    if samples:
        tok = CPMBeeTokenizer(args.vocab)
        ours_t = min(timed(lambda: [convert_data_to_id(tok, s, None, False, 16) for s in samples])
                     for _ in range(args.repeat))
        line = f"convert_data_to_id, {len(samples)} CCPM samples: ours {len(samples) / ours_t:,.0f} samples/s"
        if ref_convert is not None:
            ref_t = timed(lambda: [ref_convert(ref, s, None, False, 16) for s in samples])
            line += f", reference {len(samples) / ref_t:,.0f} samples/s ({ref_t / ours_t:.1f}x)"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
