"""Token shards of a dataset, built incrementally (`bee tokenize DATASET --vocab V`).

One shard per unmasked data file of the dataset (`shard_format.py`), in a shards folder
(default `<dataset>/token-shards/`) with a manifest `shards.json` that records, per shard, the key
it was made with: the data file's fingerprint (its meta.bin `checksum`, else size + mtime +
counts), the vocabulary's sha256, and the conversion (format version, `max_depth`, escaping).
A shard is fresh when its manifest entry has the current key and its file is there with the
recorded size; otherwise it is stale and is redone. Masked or removed data files lose their
shards. The manifest entry is written (atomically) after its shard file is in place, so it is the
shard's completion marker: an interrupted run redoes only shards it had not finished.

Records become samples as CPM-Bee's pretraining does (`record_to_sample`), then ids through
`convert_data_to_id(..., shuffle_answer=False)`. A record that cannot be converted is counted
and kept in `<file>.rejects.jsonl` beside the shard (record index, block, error).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from corpus.atomic_file import write_text_atomically
from corpus.dataset.blockfile import block_label, iter_file_records
from corpus.dataset.lock import folder_lock
from corpus.dataset.meta import DatasetCorrupt, read_meta
from corpus.dataset.progress import progress_bar
from corpus.dataset.serializer import get_serializer
from schemas import FileInfo, load_file
from tokenization.convert import SampleError, convert_data_to_id, count_answer_dicts
from tokenization.shard_format import ShardWriter, read_shard
from tokenization.token_stats import TokenCounts, TokenStats
from tokenization.tokenizer import CPMBeeTokenizer, TokenizeError
from tokenization.vocab import file_fingerprint

SHARDS_FORMAT_VERSION = 2  # 2: rows say where their record is (block, offset) and keep their ext positions
SHARDS_MANIFEST = "shards.json"
DEFAULT_SHARDS_DIR = "token-shards"
LOCK_FILE = ".shards.lock"
DEFAULT_MAX_DEPTH = 16  # CPM-Bee's pretraining default


def record_to_sample(record: Any, escaped: bool) -> Any:
    """The CPM-Bee sample a dataset record stands for.

    A plain-text record `{"text": t}` (or a text document with metadata, `{"text": t, "id": ...}`:
    a string `text` and no `<ans>`; the metadata is not model input) becomes `{"input": "", "<ans>": t}`: CPM-Bee's pretraining
    transform for text (README, "wiki" example) predicts the text after a random cut point; the
    cut at 0 is the one that keeps shards deterministic and the whole text predicted. `t` is
    escaped (`<` -> `<<`) unless the data file says it was escaped at build time, as CPM-Bee's
    transform escapes it. Anything else (a structured sample) is used as it is.
    """
    if isinstance(record, dict) and isinstance(record.get("text"), str) and "<ans>" not in record:
        text = record["text"] if escaped else CPMBeeTokenizer.escape(record["text"])
        return {"input": "", "<ans>": text}
    return record


def data_file_fingerprint(dataset: Path, info: FileInfo) -> str:
    """What a shard of this data file is valid for: its checksum, else its size, mtime and counts."""
    checksum = info.extra_keys.get("checksum")
    if isinstance(checksum, str) and checksum:
        return checksum
    stat = (dataset / info.file_name).stat()
    return f"stat:{stat.st_size}:{stat.st_mtime_ns}:{info.nlines}:{info.nbytes}"


def conversion_key(info: FileInfo, max_depth: int) -> str:
    """How a file's records become ids; a change (here or in the file's `escaped` flag) makes its shard stale."""
    escaped = info.extra_keys.get("escaped") is True
    return f"v{SHARDS_FORMAT_VERSION}:max_depth={max_depth}:escaped={escaped}:text+metadata=input+ans"


class ShardEntry(BaseModel):
    """One finished shard in `shards.json`."""

    model_config = ConfigDict(extra="forbid")

    file_name: str = Field(description="The data file it was made from.")
    shard: str = Field(description="Shard file name, in the shards folder.")
    shard_bytes: int = Field(ge=0, description="Size of the shard file; a different size means it is damaged.")
    file_fingerprint: str
    vocab_fingerprint: str
    conversion: str
    rejects: str | None = Field(default=None, description="Rejects file name, when records were rejected.")
    counts: TokenCounts

    def key(self) -> tuple[str, str, str]:
        return (self.file_fingerprint, self.vocab_fingerprint, self.conversion)


class ShardsManifest(BaseModel):
    """`shards.json`: the shards of one dataset, and its token statistics when complete."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = SHARDS_FORMAT_VERSION
    dataset: str = Field(description="The dataset folder, as it was given.")
    vocab_fingerprint: str | None = None
    dataset_fingerprint: str | None = Field(default=None, description="sha256 over the unmasked files' fingerprints.")
    shards: list[ShardEntry] = Field(default_factory=list)
    stats: TokenStats | None = None


@dataclass
class TokenizeReport:
    """What `tokenize_dataset` did: shards redone, fresh (left alone) and removed, and the stats."""

    dataset: str
    shards_dir: str
    vocab_fingerprint: str
    dataset_fingerprint: str
    redone: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    redone_source_bytes: int = 0
    seconds: float = 0.0
    stats: TokenStats = field(default_factory=TokenStats)


def shards_dir_of(dataset: str | os.PathLike, shards_dir: str | os.PathLike | None = None) -> Path:
    """The shards folder of a dataset: `shards_dir`, or `<dataset>/token-shards`."""
    return Path(shards_dir) if shards_dir is not None else Path(dataset) / DEFAULT_SHARDS_DIR


def read_shards_manifest(shards_dir: Path, dataset: str) -> ShardsManifest:
    """The shards manifest, or an empty one when there is none. Raises SchemaError for a broken one."""
    path = shards_dir / SHARDS_MANIFEST
    if not path.exists():
        return ShardsManifest(dataset=dataset)
    return load_file(ShardsManifest, path)


def write_shards_manifest(shards_dir: Path, manifest: ShardsManifest) -> None:
    """Replace `shards.json` atomically, shards sorted by data file name."""
    manifest.shards.sort(key=lambda entry: entry.file_name)
    write_text_atomically(shards_dir / SHARDS_MANIFEST, manifest.model_dump_json(indent=2) + "\n")


def _shards_lock(shards_dir: Path):
    # Two runs on one shards folder would race on shards.json; the second waits.
    return folder_lock(shards_dir, LOCK_FILE)


def _is_fresh(entry: ShardEntry | None, key: tuple[str, str, str], shards_dir: Path) -> bool:
    if entry is None or entry.key() != key:
        return False
    shard = shards_dir / entry.shard
    return shard.is_file() and shard.stat().st_size == entry.shard_bytes


@dataclass
class _Plan:
    infos: list[FileInfo]  # unmasked, in meta.bin order
    keys: dict[str, tuple[str, str, str]]
    stale: list[FileInfo]
    fresh: list[ShardEntry]
    removed: list[ShardEntry]
    dataset_fingerprint: str


def _plan(dataset: Path, shards_dir: Path, manifest: ShardsManifest, vocab_fp: str, max_depth: int) -> _Plan:
    infos = [info for info in read_meta(dataset) if not info.mask]
    keys = {info.file_name: (data_file_fingerprint(dataset, info), vocab_fp, conversion_key(info, max_depth)) for info in infos}
    by_file = {entry.file_name: entry for entry in manifest.shards}
    stale = [info for info in infos if not _is_fresh(by_file.get(info.file_name), keys[info.file_name], shards_dir)]
    stale_names = {info.file_name for info in stale}
    fresh = [by_file[info.file_name] for info in infos if info.file_name not in stale_names]
    removed = [entry for name, entry in by_file.items() if name not in keys]
    digest = hashlib.sha256()
    for info in infos:
        digest.update(f"{info.file_name}\0{keys[info.file_name][0]}\n".encode())
    return _Plan(infos, keys, stale, fresh, removed, digest.hexdigest())


def stale_shards(
    dataset: str | os.PathLike,
    vocab_path: str | os.PathLike,
    shards_dir: str | os.PathLike | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[str]:
    """Names of the data files whose shard is missing or stale for this vocabulary (nothing is written).

    Raises FileNotFoundError without meta.bin or vocab, DatasetCorrupt, SchemaError for a broken shards.json.
    """
    dataset = Path(dataset)
    out = shards_dir_of(dataset, shards_dir)
    plan = _plan(dataset, out, read_shards_manifest(out, str(dataset)), file_fingerprint(vocab_path), max_depth)
    return [info.file_name for info in plan.stale]


def fresh_shards(
    dataset: str | os.PathLike,
    vocab_fingerprint: str,
    shards_dir: str | os.PathLike | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> dict[str, Path]:
    """Data file name -> shard file, for the unmasked data files whose shard is fresh for this
    vocabulary (sha256 of the file) and `max_depth`. Writes nothing; no shards folder gives {}.

    Raises DatasetCorrupt, SchemaError for a broken shards.json.
    """
    dataset = Path(dataset)
    out = shards_dir_of(dataset, shards_dir)
    if not (out / SHARDS_MANIFEST).is_file():
        return {}
    plan = _plan(dataset, out, read_shards_manifest(out, str(dataset)), vocab_fingerprint, max_depth)
    return {entry.file_name: out / entry.shard for entry in plan.fresh}


def _iter_file_records(dataset: Path, info: FileInfo) -> Iterator[tuple[int, int, int, Any]]:
    """(index in file, global block, offset in block, record) for every record of one data file."""
    deserialize = get_serializer("auto").deserialize
    for index, (global_block, offset, payload) in enumerate(iter_file_records(dataset, info)):
        try:
            record = deserialize(payload)
        except Exception as error:
            raise DatasetCorrupt(
                f"{dataset / info.file_name}: {block_label(info, global_block)}: record {index} does not decode: "
                f"{type(error).__name__}: {error}"
            ) from None
        yield index, global_block, offset, record


_PROGRESS_EVERY = 256  # records between progress updates


def tokenize_file(
    dataset: Path,
    info: FileInfo,
    tokenizer: CPMBeeTokenizer,
    shards_dir: Path,
    key: tuple[str, str, str],
    max_depth: int,
    advance: Callable[[int], None] | None = None,
) -> ShardEntry:
    """Convert every record of one data file into its shard (and rejects file). Returns its manifest entry.

    `advance(n)` is called as records are done (a progress bar).

    Raises DatasetCorrupt for a broken data file; records that do not convert are rejects, not errors.
    """
    shard_name = f"{info.file_name}.arrow"
    rejects_name = f"{info.file_name}.rejects.jsonl"
    escaped = info.extra_keys.get("escaped") is True
    counts = TokenCounts(source_bytes=info.nbytes)
    rejects: list[str] = []
    key_dict = {"file_name": info.file_name, "file_fingerprint": key[0], "vocab_fingerprint": key[1], "conversion": key[2]}
    with ShardWriter(shards_dir / shard_name, key_dict) as writer:
        for index, global_block, offset, record in _iter_file_records(dataset, info):
            if advance is not None and index % _PROGRESS_EVERY == _PROGRESS_EVERY - 1:
                advance(_PROGRESS_EVERY)
            sample = record_to_sample(record, escaped)
            ext_positions: list[tuple[int, int]] = []
            try:
                converted = convert_data_to_id(
                    tokenizer, sample, shuffle_answer=False, max_depth=max_depth, ext_positions=ext_positions
                )
            except (SampleError, TokenizeError) as error:
                counts.nrejected += 1
                rejects.append(json.dumps(
                    {"record": index, "block": global_block, "error": f"{type(error).__name__}: {error}"},
                    ensure_ascii=False,
                ))
                continue
            writer.add(
                converted, record=index, block=global_block - info.block_begin, offset=offset,
                ext_positions=ext_positions, answer_dicts=count_answer_dicts(sample),
            )
            counts.add_record(converted[0], converted[6]["ext_table"], tokenizer.unk_id)
    if advance is not None:
        advance(info.nlines % _PROGRESS_EVERY)
    rejects_path = shards_dir / rejects_name
    if rejects:
        write_text_atomically(rejects_path, "\n".join(rejects) + "\n")
    elif rejects_path.exists():
        rejects_path.unlink()
    return ShardEntry(
        file_name=info.file_name, shard=shard_name, shard_bytes=(shards_dir / shard_name).stat().st_size,
        file_fingerprint=key[0], vocab_fingerprint=key[1], conversion=key[2],
        rejects=rejects_name if rejects else None, counts=counts,
    )


_worker_tokenizer: CPMBeeTokenizer | None = None


def _init_worker(vocab_path: str) -> None:
    global _worker_tokenizer
    _worker_tokenizer = CPMBeeTokenizer(vocab_path)


def _tokenize_file_in_worker(args: tuple) -> ShardEntry:
    assert _worker_tokenizer is not None
    return tokenize_file(*args[:2], _worker_tokenizer, *args[2:])


def dataset_stats(shards_dir: Path, entries: list[ShardEntry]) -> TokenStats:
    """Token statistics of a dataset from its shard entries and the `length` column of each shard."""
    counts = TokenCounts()
    lengths: list[np.ndarray] = []
    for entry in entries:
        counts = counts + entry.counts
        column = read_shard(shards_dir / entry.shard, columns=["length"]).column("length")
        lengths.append(column.to_numpy())
    return TokenStats.from_counts(counts, np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int32))


def _run_jobs(
    jobs: list[tuple],
    tokenizer: CPMBeeTokenizer,
    vocab_path: str | os.PathLike,
    workers: int,
    finished: Callable[[ShardEntry], None],
    advance: Callable[[int], None],
) -> None:
    """Run `tokenize_file` for each job, here or in `workers` processes; `finished(entry)` in job order."""
    if workers > 1 and len(jobs) > 1:
        # forkserver: the parent may hold threads (Beam, Prefect) that fork would copy badly.
        with ProcessPoolExecutor(
            max_workers=min(workers, len(jobs)), mp_context=get_context("forkserver"),
            initializer=_init_worker, initargs=(str(vocab_path),),
        ) as pool:
            for job, entry in zip(jobs, pool.map(_tokenize_file_in_worker, jobs)):
                advance(job[1].nlines)  # workers cannot reach the bar: count whole files
                finished(entry)
        return
    for job in jobs:
        finished(tokenize_file(job[0], job[1], tokenizer, *job[2:], advance=advance))


def tokenize_dataset(
    dataset: str | os.PathLike,
    vocab_path: str | os.PathLike,
    shards_dir: str | os.PathLike | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
    workers: int = 1,
    progress: bool = False,
) -> TokenizeReport:
    """Bring a dataset's token shards up to date: redo stale ones only, drop orphans, write stats.

    Takes: the dataset folder, the vocabulary file, the shards folder (default
    `<dataset>/token-shards`), `max_depth` of segment buckets, `workers` processes (one shard each),
    `progress` to show a bar of records done on stderr.
    Returns: a `TokenizeReport` (stats also in `shards.json`).
    Raises: FileNotFoundError (no meta.bin / vocab), DatasetCorrupt (broken data file),
    VocabError, SchemaError (broken shards.json).
    """
    started = time.perf_counter()
    dataset = Path(dataset)
    out = shards_dir_of(dataset, shards_dir)
    tokenizer = CPMBeeTokenizer(vocab_path)
    vocab_fp = tokenizer.vocab_fingerprint
    with _shards_lock(out):
        manifest = read_shards_manifest(out, str(dataset))
        plan = _plan(dataset, out, manifest, vocab_fp, max_depth)
        done = {entry.file_name: entry for entry in plan.fresh}
        manifest.shards = list(done.values())
        manifest.stats = None  # incomplete until every shard is fresh
        manifest.vocab_fingerprint, manifest.dataset_fingerprint = vocab_fp, plan.dataset_fingerprint
        for entry in plan.removed:
            for name in (entry.shard, entry.rejects):
                if name and (out / name).exists():
                    (out / name).unlink()
        write_shards_manifest(out, manifest)

        def finished(entry: ShardEntry) -> None:
            done[entry.file_name] = entry
            manifest.shards = list(done.values())
            write_shards_manifest(out, manifest)

        jobs = [(dataset, info, out, plan.keys[info.file_name], max_depth) for info in plan.stale]
        total = sum(info.nlines for info in plan.stale)
        with progress_bar(f"tokenize {dataset.name}", total, progress and total > 0) as advance:
            _run_jobs(jobs, tokenizer, vocab_path, workers, finished, advance)

        ordered = [done[info.file_name] for info in plan.infos]
        manifest.stats = dataset_stats(out, ordered)
        write_shards_manifest(out, manifest)
    return TokenizeReport(
        dataset=str(dataset), shards_dir=str(out), vocab_fingerprint=vocab_fp,
        dataset_fingerprint=plan.dataset_fingerprint,
        redone=[info.file_name for info in plan.stale], fresh=[entry.file_name for entry in plan.fresh],
        removed=[entry.file_name for entry in plan.removed],
        redone_source_bytes=sum(info.nbytes for info in plan.stale),
        seconds=time.perf_counter() - started, stats=manifest.stats,
    )

