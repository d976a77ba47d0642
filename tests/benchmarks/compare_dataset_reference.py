"""Compare corpus.dataset with CPM-Bee's own `cpm_live.dataset`, byte for byte.

Writes the same records with the reference `build_dataset` and with ours (pickle and JSON,
several block sizes), then checks: data files byte-identical, meta.bin lines identical on
CPM-Bee's seven keys (ours only adds extra keys after them), each reader reads the other's
dataset, and the reference's per-rank sharding equals ours. Runs outside pytest; skips when
the reference checkout is absent:

    .venv/bin/python tests/benchmarks/compare_dataset_reference.py [/work/scratch/cpm-bee] [workdir]

The reference imports `bmtrain` (a GPU library) at import time; a stand-in module is put
on sys.path (only `rank()`/`world_size()` are needed for world size 1 reading).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import types
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from corpus.dataset import DistributedDataset, build_dataset, iter_records, verify_dataset  # noqa: E402

CORE_KEYS = ["file_name", "block_begin", "block_end", "nbytes", "nlines", "mask", "block_size"]


def load_reference(checkout: Path):
    """`cpm_live.dataset` from the checkout, with a bmtrain stand-in."""
    stand_in = types.ModuleType("bmtrain")
    stand_in.rank = lambda: 0
    stand_in.world_size = lambda: 1
    stand_in.distributed = types.SimpleNamespace()
    sys.modules.setdefault("bmtrain", stand_in)
    sys.path.insert(0, str(checkout / "src"))
    import cpm_live.dataset as reference
    from cpm_live.dataset.serializer import JsonSerializer

    return reference, JsonSerializer


def sample_records() -> list:
    long_text = "北京是中国的首都。Beijing is the capital of China. " * 7
    records = []
    for i in range(400):
        records.append({"text": long_text[: (i * 37) % 300], "id": i, "tags": ["a", "b"][: i % 3], "score": i / 7})
    records += [{"<ans>": "<option_1>", "options": {"<option_0>": "甲", "<option_1>": "乙"}}, [1, 2, 3], "plain"]
    return records


def write_both(reference, json_serializer, workdir: Path, name: str, block_size: int, serializer: str, records: list):
    ref_dir, our_dir = workdir / f"{name}-ref", workdir / f"{name}-ours"
    ref_serializer = json_serializer() if serializer == "json" else None
    for part, chunk in (("part-0", records[:250]), ("part-1", records[250:])):
        with reference.build_dataset(str(ref_dir), part, block_size=block_size, serializer=ref_serializer) as writer:
            for record in chunk:
                writer.write(record)
        with build_dataset(our_dir, part, block_size=block_size, serializer=serializer) as writer:
            for record in chunk:
                writer.write(record)
    return ref_dir, our_dir


def compare(reference, json_serializer, workdir: Path) -> list[str]:
    problems, lines = [], []
    records = sample_records()
    for block_size in (1024, 4096, 16 << 20):
        for serializer in ("pickle", "json"):
            name = f"{serializer}-{block_size}"
            before = len(problems)
            ref_dir, our_dir = write_both(reference, json_serializer, workdir, name, block_size, serializer, records)
            for part in ("part-0", "part-1"):
                if (ref_dir / part).read_bytes() != (our_dir / part).read_bytes():
                    problems.append(f"{name}/{part}: data files differ")
            ref_meta = (ref_dir / "meta.bin").read_text().splitlines()
            our_meta = (our_dir / "meta.bin").read_text().splitlines()
            for ref_line, our_line in zip(ref_meta, our_meta, strict=True):
                ours = json.loads(our_line)
                if json.dumps({key: ours[key] for key in CORE_KEYS}) != ref_line:
                    problems.append(f"{name}: meta.bin line differs: {ref_line} vs {our_line}")
                if not our_line.startswith(ref_line[:-1] + ", "):
                    problems.append(f"{name}: our meta.bin line does not start with CPM-Bee's: {our_line}")
            # each reader reads the other's dataset
            ref_serializer = json_serializer() if serializer == "json" else None
            theirs_of_ours = list(reference.SimpleDataset(str(our_dir), serializer=ref_serializer, shuffle=False))
            ours_of_theirs = list(iter_records(ref_dir))
            if sorted(map(repr, theirs_of_ours)) != sorted(map(repr, records)):
                problems.append(f"{name}: the reference reader does not read our dataset back")
            if ours_of_theirs != records:
                problems.append(f"{name}: our reader does not read the reference dataset back")
            verify_dataset(ref_dir)  # a reference-written dataset (no extra keys) passes verify
            # the same blocks go to the same ranks
            for world_size in (2, 3):
                for rank in range(world_size):
                    ref_rank = reference.DistributedDataset(
                        str(ref_dir), rank, world_size, serializer=ref_serializer, max_repeat_times=1, shuffle=False
                    )
                    ref_rank._update_states = lambda fast_skip=True: None  # world size > 1 needs nothing else
                    theirs = _read_epoch(ref_rank)
                    ours = _read_epoch(DistributedDataset(ref_dir, rank, world_size, max_repeat_times=1, shuffle=False))
                    if Counter(map(repr, theirs)) != Counter(map(repr, ours)):
                        problems.append(f"{name}: rank {rank} of {world_size} reads other records than the reference")
            if len(problems) == before:
                lines.append(f"{name}: data files and meta.bin lines identical, cross-read and sharding equal")
    # records that exactly fill a block, empty payloads, an empty file: raw bytes
    from cpm_live.dataset.serializer import RawSerializer

    payloads = [bytes([i % 251]) * n for i, n in enumerate([58, 0, 1, 57, 58, 30, 22, 23, 58, 2])]
    for part, chunk in (("full", payloads), ("empty", [])):
        with reference.build_dataset(str(workdir / "raw-ref"), part, block_size=64, serializer=RawSerializer()) as w:
            for payload in chunk:
                w.write(payload)
        with build_dataset(workdir / "raw-ours", part, block_size=64, serializer="raw") as w:
            for payload in chunk:
                w.write(payload)
        same = (workdir / "raw-ref" / part).read_bytes() == (workdir / "raw-ours" / part).read_bytes()
        if not same:
            problems.append(f"raw-64/{part}: data files differ")
        else:
            lines.append(f"raw-64/{part}: block-filling records / empty file identical")
    # a reader state saved by CPM-Bee's DistributedDataset resumes here at the same record
    ref_dir = workdir / "pickle-1024-ref"
    ref_reader = reference.DistributedDataset(str(ref_dir), shuffle=False, max_repeat_times=1)
    for _ in range(123):
        ref_reader.read()
    ref_state = ref_reader.state_dict()
    theirs_next = _read_epoch(ref_reader)
    ours_reader = DistributedDataset(ref_dir, shuffle=False, max_repeat_times=1)
    ours_reader.load_state_dict(ref_state)
    if _read_epoch(ours_reader) != theirs_next:
        problems.append("a CPM-Bee reader state does not resume at the same record here")
    else:
        lines.append(f"CPM-Bee reader state after 123 records: resumes here at the same record ({len(theirs_next)} left)")
    for line in lines:
        print(line)
    return problems


def _read_epoch(dataset) -> list:
    out = []
    while True:
        try:
            out.append(dataset.read())
        except EOFError:
            return out


def main() -> int:
    checkout = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "scratch" / "cpm-bee"
    if not (checkout / "src" / "cpm_live" / "dataset").is_dir():
        print(f"skipped: no CPM-Bee checkout at {checkout}")
        return 0
    reference, json_serializer = load_reference(checkout)
    workdir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="dataset-compare-"))
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    problems = compare(reference, json_serializer, workdir)
    for problem in problems:
        print("DIFFERENT:", problem)
    print("equal to the reference" if not problems else f"{len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
