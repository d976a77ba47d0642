"""Check `trainer.packing.BatchPacker` against CPM-Bee's own packer, array for array, and time both.

Feeds the same instances in the same order to the reference `_MixedDatasetBatchPacker`
(`cpm_live/training_tasks/bee/pretrain.py`, run from a checkout of OpenBMB/CPM-Bee) and to
ours, and requires identical batches: every array equal in dtype and value, `task_ids`
compared through `task_names` (the reference orders task names by a set, so by string hash).
Answer shuffling is off on both sides so the comparison is deterministic.

    .venv/bin/python tests/benchmarks/compare_packing_reference.py [--cpm-bee PATH] [--vocab bee.txt]
    .venv/bin/python tests/benchmarks/compare_packing_reference.py --write-golden tests/trainer/golden

The reference imports `bmtrain` (a GPU library), `jieba` and `pkg_resources` at import time:
this script registers small stand-ins for those that are not installed (rank 0, world size 1).
Exits 0 (with a note) when the reference checkout or the vocabulary is absent.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

DEFAULT_CPM_BEE = REPO.parent / "scratch" / "cpm-bee"
DEFAULT_VOCAB = REPO.parent / "shared" / "cpm-bee" / "bee.txt"
TASKS = ("qa", "lm", "choice")

# ----------------------------------------------------------------------------- instances

WORDS = ["the", "model", "数据", "训练", "中文", "language", "bee", "我们", "学习", "packing", "answer", "问题"]
RARE = ["\U0001f600", "\u2a6d6", "\U0002a6d6", "\u0f3a"]  # likely outside the vocabulary: <unk> with subs


def _text(r: random.Random, n_words: int, rich: bool = True) -> str:
    """Words; `rich` text also has unknown characters, ext special tokens and escaped `<`."""
    parts = []
    for _ in range(n_words):
        roll = r.random() if rich else 1.0
        if roll < 0.04:
            parts.append(r.choice(RARE))
        elif roll < 0.07:
            parts.append(f"<mask_{r.randrange(3)}>")  # special token outside the vocabulary: ext
        elif roll < 0.09:
            parts.append("a<<b")  # an escaped `<`
        else:
            parts.append(r.choice(WORDS))
    return " ".join(parts)


def make_samples(n: int, seed: int, max_words: int) -> list:
    """`n` CPM-Bee samples of the usual shapes, lengths spread so that packing has choices."""
    r = random.Random(seed)
    samples = []
    for _ in range(n):
        size = r.randint(1, max_words)
        kind = r.randrange(4)
        rich = r.random() < 0.2  # most samples plain, so that some batches need no ext table
        if kind == 0:
            samples.append({"text": _text(r, size, rich), "<ans>": _text(r, r.randint(1, 6), rich)})
        elif kind == 1:
            options = {f"<option_{i}>": _text(r, r.randint(1, 4)) for i in range(r.randint(2, 4))}
            samples.append({"question": _text(r, size, rich), "options": options, "<ans>": f"<option_{r.randrange(2)}>"})
        elif kind == 2:
            samples.append({"input": _text(r, size, rich), "<ans>": {"title": _text(r, 3), "summary": _text(r, 5)}})
        else:
            samples.append({"passage": _text(r, size, rich), "<ans>": ""})  # empty answer: EOS only
    return samples


def make_steps(n: int, seed: int) -> list[tuple[str, int]]:
    """(task name, number of in-context samples) of each instance."""
    r = random.Random(seed + 1)
    return [(r.choice(TASKS), r.choice([0, 0, 1, 2])) for _ in range(n)]


# ----------------------------------------------------------------------------- the two packers


def _stand_in(name: str, **attributes) -> None:
    """Register module `name` with `attributes` unless the real one can be imported."""
    try:
        __import__(name)
    except ImportError:
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        sys.modules[name] = module


def _resource_stream(package: str, resource: str):
    module = __import__(package)
    return open(Path(module.__file__).parent / resource, "rb")


def import_reference(cpm_bee: Path):
    # what cpm_live touches at import time: bmtrain (GPU training), jieba (the CPM-Ant
    # tokenizer), pkg_resources (to find its vocabulary)
    _stand_in("bmtrain", rank=lambda: 0, world_size=lambda: 1, print_rank=print)
    _stand_in("jieba")
    _stand_in("pkg_resources", resource_stream=_resource_stream)
    sys.path.insert(0, str(cpm_bee / "src"))
    from cpm_live.tokenizers import CPMBeeTokenizer as ReferenceTokenizer
    from cpm_live.training_tasks.bee.pretrain import _MixedDatasetBatchPacker

    class Packer(_MixedDatasetBatchPacker):
        def data_to_id(self, data, prev_ext_states=None, shuffle_answer=True):
            return super().data_to_id(data, prev_ext_states, shuffle_answer=False)

    return ReferenceTokenizer, Packer


class _Cursor:
    """A dataset stand-in: `read()` hands out the samples in order."""

    def __init__(self, samples: list) -> None:
        self.samples, self.position = samples, 0

    def read(self):
        sample = self.samples[self.position]
        self.position += 1
        return sample


def run_reference(packer, samples, steps) -> tuple[list[tuple[int, dict]], float, int]:
    cursor = _Cursor(samples)
    batches = []
    started = time.perf_counter()
    for step, (task, k) in enumerate(steps):
        config = {
            "task_name": task,
            "dataset_name": "golden",
            "dataset": cursor,
            "transforms": [],
            "incontext_weight": [1.0 if i == k else 0.0 for i in range(k + 1)],
        }
        batch = packer.add_data(config)
        if batch is not None:
            batches.append((step, batch))
    while len(packer) > 0:
        batches.append((len(steps), packer.pack_batch(force=True)))
    return batches, time.perf_counter() - started, cursor.position


def run_ours(packer, samples, steps) -> tuple[list[tuple[int, dict]], float, int]:
    from trainer.incontext import SampleRejected

    skipped = 0
    cursor = _Cursor(samples)
    batches = []
    started = time.perf_counter()
    for step, (task, k) in enumerate(steps):
        while True:  # the reference skips samples longer than max_length and reads on
            try:
                batch = packer.add(cursor.read(), task, (cursor.read() for _ in range(k)))
                break
            except SampleRejected as rejected:
                if rejected.reason != "too_long":
                    raise
                skipped += 1
        if batch is not None:
            batches.append((step, batch))
    while len(packer) > 0:
        batches.append((len(steps), packer.pack_batch(force=True)))
    return batches, time.perf_counter() - started, skipped


KEYS = (
    "inputs", "inputs_sub", "length", "context", "sample_ids", "num_segments", "segment_ids",
    "segment_rel_offset", "segment_rel", "spans", "target", "ext_ids", "ext_sub",
)


def batch_differences(expected: dict, actual: dict) -> list[str]:
    """What differs between a reference batch and ours (empty when identical)."""
    problems = []
    for key in KEYS:
        a, b = np.asarray(expected[key]), np.asarray(actual[key])
        if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
            problems.append(f"{key}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}")
    # padding holds task id 0, whichever task that is: compare names on used positions only
    used = np.arange(expected["inputs"].shape[1])[None, :] < np.asarray(expected["length"])[:, None]
    expected_tasks = np.array(expected["task_names"], dtype=object)[expected["task_ids"]][used]
    actual_tasks = np.array(actual["task_names"], dtype=object)[actual["task_ids"]][used]
    if np.asarray(actual["task_ids"]).dtype != np.int32 or not np.array_equal(expected_tasks, actual_tasks):
        problems.append("task_ids (as names)")
    return problems


def write_golden(folder: Path, config: dict, samples, steps, batches) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "config": config,
        "samples": samples,
        "steps": steps,
        "batches": [{"after_step": step, "task_names": batch["task_names"]} for step, batch in batches],
    }
    (folder / "packing_reference.json").write_text(json.dumps(meta, ensure_ascii=False) + "\n", encoding="utf-8")
    arrays = {f"{n}/{key}": np.asarray(batch[key]) for n, (_, batch) in enumerate(batches) for key in KEYS + ("task_ids",)}
    np.savez_compressed(folder / "packing_reference.npz", **arrays)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpm-bee", type=Path, default=DEFAULT_CPM_BEE, help="checkout of OpenBMB/CPM-Bee")
    parser.add_argument("--vocab", type=Path, default=DEFAULT_VOCAB, help="official bee.txt")
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--max-words", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-golden", type=Path, help="write a small golden fixture to this folder")
    args = parser.parse_args(argv)
    if not (args.cpm_bee / "src" / "cpm_live").is_dir() or not args.vocab.is_file():
        print(f"skipped: reference {args.cpm_bee} or vocabulary {args.vocab} not present")
        return 0
    if args.write_golden:  # small, so the fixture stays well under 200 KB
        args.samples, args.batch_size, args.max_length, args.max_words = 100, 3, 96, 40

    ReferenceTokenizer, ReferencePacker = import_reference(args.cpm_bee)
    from tokenization import CPMBeeTokenizer
    from trainer.packing import BatchPacker

    samples = make_samples(args.samples * 3, args.seed, args.max_words)  # in-context and skips read extra
    steps = make_steps(args.samples, args.seed)
    reference = ReferencePacker(args.batch_size, args.max_length, ReferenceTokenizer())
    ours = BatchPacker(args.batch_size, args.max_length, CPMBeeTokenizer(args.vocab))
    expected, reference_seconds, consumed = run_reference(reference, samples, steps)
    actual, our_seconds, skipped = run_ours(ours, samples, steps)

    failures = 0
    if [step for step, _ in expected] != [step for step, _ in actual]:
        print("FAIL: batches come out after different instances")
        failures += 1
    for n, ((_, want), (_, got)) in enumerate(zip(expected, actual)):
        problems = batch_differences(want, got)
        if problems:
            failures += 1
            print(f"FAIL batch {n}: {', '.join(problems)}")
    rows = sum(int(batch["length"].shape[0]) for _, batch in expected)
    tokens = sum(int(batch["length"].sum()) for _, batch in expected)
    incontext = sum(int((batch["sample_ids"] > 0).sum()) for _, batch in expected)
    placeholders = sum(int(batch["ext_sub"][0] == 1 and batch["ext_ids"][0] == 0) for _, batch in expected)
    print(
        f"{len(steps)} instances ({skipped} too-long samples skipped) -> {len(expected)} batches, "
        f"{rows} rows of {args.max_length}, fill {tokens / (rows * args.max_length):.1%}, "
        f"{incontext} in-context tokens, {placeholders} batches with the placeholder ext entry"
    )
    print(f"reference packer: {reference_seconds:.2f} s ({len(steps) / reference_seconds:,.0f} instances/s)")
    print(f"our packer:       {our_seconds:.2f} s ({len(steps) / our_seconds:,.0f} instances/s)")
    if failures:
        print(f"FAILED: {failures} mismatches")
        return 1
    print(f"identical: {len(expected)} batches, all {len(KEYS) + 1} arrays")
    if args.write_golden:
        config = {"batch_size": args.batch_size, "max_length": args.max_length, "max_depth": 16}
        write_golden(args.write_golden, config, samples[:consumed], steps, expected)
        print(f"golden fixture written to {args.write_golden}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
