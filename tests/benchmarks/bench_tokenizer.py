"""Tokenizer throughput, ours beside CPM-Bee's reference, on Chinese and English text.

    python tests/benchmarks/bench_tokenizer.py [--reference ../scratch/cpm-bee/src] [--vocab ../shared/cpm-bee/bee.txt]

Chinese: the CCPM sample (../shared/cpm-bee/ccpm_eval.jsonl; every input, option and question,
one a line) when present, else the embedded zh essays. English: the pydoc topics that ship with
Python (~465 k chars). "cold" is one pass with a fresh tokenizer (empty chunk cache), the honest
figure for a stream of new text; "warm" is a second pass over the same text. The reference runs
when its source is found; otherwise its anchor (140 k chars/s on the build machine) is printed.
Best of --repeat runs each.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).parent))

from compare_tokenizer_reference import (  # noqa: E402
    DEFAULT_CCPM, DEFAULT_REFERENCE, DEFAULT_VOCAB, ccpm_samples, ccpm_texts, english_text, load_reference,
)

from tokenization import CPMBeeTokenizer, convert_data_to_id  # noqa: E402

REFERENCE_ANCHOR_CHARS_PER_S = 140_000
ZH_ESSAYS = REPO / "corpus" / "sample" / "raw" / "txt" / "zh-essays.txt"


def best_of(repeat: int, run: Callable[[], Any], setup: Callable[[], Any] = lambda: None) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        state = setup()
        t0 = time.perf_counter()
        result = run() if state is None else run(state)  # type: ignore[call-arg]
        best = min(best, time.perf_counter() - t0)
    return best, result


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

    t0 = time.perf_counter()
    CPMBeeTokenizer(args.vocab)
    print(f"tokenizer load: {time.perf_counter() - t0:.2f} s")

    samples = ccpm_samples(Path(args.ccpm)) if Path(args.ccpm).exists() else []
    corpora = {}
    if samples:
        corpora["chinese (CCPM)"] = "\n".join(ccpm_texts(samples))
    corpora["chinese (zh essays)"] = ZH_ESSAYS.read_text(encoding="utf-8").replace("<", "<<")
    corpora["english (pydoc)"] = english_text()

    ref = ref_convert = None
    if Path(args.reference).exists():
        ref, ref_convert = load_reference(Path(args.reference), Path(args.vocab))
    else:
        print(f"reference not found at {args.reference}: printing its anchor instead")

    header = f"{'text':22} {'chars':>9} {'ours cold chars/s':>18} {'warm chars/s':>13} {'tokens/s':>11} {'reference chars/s':>18} {'speed-up':>9}"
    print(header)
    for name, text in corpora.items():
        cold, (ids, _) = best_of(args.repeat, lambda tok: tok.encode(text), lambda: CPMBeeTokenizer(args.vocab))
        tok = CPMBeeTokenizer(args.vocab)
        tok.encode(text)
        warm, _ = best_of(args.repeat, lambda: tok.encode(text))
        if ref is not None:
            ref_t, (ref_ids, _) = best_of(1, lambda: ref.encode(text))
            assert ref_ids == ids, f"{name}: ids differ from the reference"
            ref_rate = len(text) / ref_t
            ref_label = f"{ref_rate:,.0f}"
        else:
            ref_rate = REFERENCE_ANCHOR_CHARS_PER_S
            ref_label = f"({ref_rate:,} anchor)"
        rate = len(text) / cold
        print(f"{name:22} {len(text):>9,} {rate:>18,.0f} {len(text) / warm:>13,.0f} "
              f"{len(ids) / cold:>11,.0f} {ref_label:>18} {rate / ref_rate:>8.1f}x")

    if samples:
        tok = CPMBeeTokenizer(args.vocab)
        ours_t, _ = best_of(args.repeat, lambda: [convert_data_to_id(tok, s, None, False, 16) for s in samples])
        line = f"convert_data_to_id on {len(samples)} CCPM samples: ours {len(samples) / ours_t:,.0f} samples/s"
        if ref_convert is not None:
            ref_t, _ = best_of(1, lambda: [ref_convert(ref, s, None, False, 16) for s in samples])
            line += f", reference {len(samples) / ref_t:,.0f} samples/s ({ref_t / ours_t:.1f}x)"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
