"""Decontamination: reject the training records that share an n-gram with an evaluation item
(reason `contaminated`, the item in `detail`), run on what is written — after dedupe, before
escaping, inside the Beam job's last stage with the evaluation n-grams as a side input.

N-grams are over `units.text_units` of the NFKC-lower-cased text (words of Latin text, single CJK
characters; punctuation and `<` escapes never count), so "13 words" and "an equivalent CJK
span" mix: a window starting at a token runs until it holds `ngram` words' worth of text,
a word weighing 1/`ngram` and a CJK character 1/`cjk_ngram`. Window hashes are 64-bit
polynomial hashes of 64-bit token ids (blake2b), computed for every start at once with numpy.
An evaluation text shorter than one window but at least `min_tokens` long is one window of
its own length, and training text is also cut into windows of each such length. Structured
evaluation items are compared on their question, input and option texts (each on its own and
all together, in the item's key order); windows shared by `template_min_items` or more items
of a set (a question template) are left out.

The index (`EvalIndex`) is a sorted uint64 array of window hashes and the item of each: 16
bytes per distinct evaluation n-gram plus the item labels, held whole by every worker (e.g.
10 million n-grams, far more than MMLU + C-Eval + CMMLU together, is about 160 MB).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from corpus.pipeline.stage import StageCounters, reject_record
from corpus.pipeline.units import _CJK_RE, text_units
from schemas import Record, Reject
from schemas.build_config import DecontaminationConfig

STAGE = "decontamination"
CONTAMINATED = "contaminated"
COMPARED_KEYS = ("question", "input", "options")
_P = 0x100000001B3  # odd: invertible modulo 2**64
_MASK = (1 << 64) - 1
_P_INV = pow(_P, -1, 1 << 64)


class EvalItem(NamedTuple):
    eval_set: str  # the path as configured
    label: str  # `<file>:<line>` or `<dataset>#<index>`
    texts: list[str]  # compared texts: each field, then all together


class EvalIndex(NamedTuple):
    hashes: np.ndarray  # sorted, distinct uint64 window hashes
    items: np.ndarray  # int32: the (first) item each hash came from
    labels: list[str]
    sets: list[str]  # per item: its evaluation set
    short_lengths: tuple[int, ...]  # token counts of the whole-text windows of short texts
    items_per_set: dict[str, int]
    templates_left_out: int


# ---------------------------------------------------------------- evaluation sets


def compared_texts(sample: Any) -> list[str]:
    """The texts a structured evaluation item is compared on: question, input and option texts
    (each, then all together in key order); a `text` field or, failing all, every string value
    outside `<ans>`."""
    if isinstance(sample, str):
        return [sample]
    if not isinstance(sample, dict):
        return []
    fields: list[str] = []
    for key, value in sample.items():
        if key in COMPARED_KEYS:
            if isinstance(value, dict):
                fields += [v for v in value.values() if isinstance(v, str)]
            elif isinstance(value, list):
                fields += [v for v in value if isinstance(v, str)]
            elif isinstance(value, str):
                fields.append(value)
    if not fields:
        if isinstance(sample.get("text"), str):
            return [sample["text"]]
        fields = [v for k, v in sample.items() if k != "<ans>" and isinstance(v, str)]
    return fields + (["\n".join(fields)] if len(fields) > 1 else [])


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def read_eval_set(path: str) -> Iterator[EvalItem]:
    """Items of one evaluation set: a JSONL file (`.gz` too), a binary dataset folder (with
    meta.bin) or a mixture manifest (`datasets.json`: every dataset it lists)."""
    from corpus.dataset import META_FILE, iter_records

    local = Path(path)
    if local.is_dir():
        if not (local / META_FILE).exists():
            raise ValueError(f"decontamination.eval_sets: {path} is a folder without {META_FILE}: not a binary dataset")
        for index, record in enumerate(iter_records(local)):
            yield EvalItem(path, f"{local.name}#{index}", compared_texts(record))
        return
    if not local.is_file():
        raise FileNotFoundError(f"decontamination.eval_sets: {path} does not exist (give JSONL files, dataset folders or manifests)")
    with _open_text(local) as handle:
        first = handle.read(1)
    if first == "[":  # a manifest: a JSON list of dataset entries
        from corpus.manifest import read_manifest

        for entry in read_manifest(local):
            folder = (local.parent / entry.path).resolve()
            for index, record in enumerate(iter_records(folder)):
                yield EvalItem(path, f"{entry.identity}#{index}", compared_texts(record))
        return
    with _open_text(local) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"decontamination.eval_sets: {path}:{number}: not a JSON line ({error.msg}); "
                                 "an evaluation set is JSONL, a dataset folder or a manifest") from None
            yield EvalItem(path, f"{local.name}:{number}", compared_texts(sample))


# ---------------------------------------------------------------- windows


def _normal_tokens(text: str) -> list[str]:
    return text_units(unicodedata.normalize("NFKC", text).lower())


class Windows:
    """Token ids of one text and the hash of any window of them (vectorised)."""

    _ids: dict[str, int] = {}

    def __init__(self, toks: list[str], config: DecontaminationConfig):
        self.tokens = toks
        n = len(toks)
        self.n = n
        ids = np.fromiter((self._id(t) for t in toks), dtype=np.uint64, count=n)
        powers = np.full(n + 1, _P, dtype=np.uint64)
        powers[0] = 1
        self.powers = np.cumprod(powers, dtype=np.uint64)  # P**k, wrapping
        inverse = np.full(n + 1, _P_INV, dtype=np.uint64)
        inverse[0] = 1
        inverse = np.cumprod(inverse, dtype=np.uint64)
        self.sums = np.zeros(n + 1, dtype=np.uint64)
        if n:
            self.sums[1:] = np.cumsum(ids * inverse[:n], dtype=np.uint64)  # S[k] = sum id[m] P**-m, m < k
        cjk = np.fromiter((bool(_CJK_RE.match(t)) for t in toks), dtype=bool, count=n)
        weights = np.where(cjk, config.ngram, config.cjk_ngram).astype(np.int64)
        self.weight = np.concatenate(([0], np.cumsum(weights)))
        self.threshold = config.ngram * config.cjk_ngram

    @classmethod
    def _id(cls, token: str) -> int:
        value = cls._ids.get(token)
        if value is None:
            if len(cls._ids) > 1_000_000:
                cls._ids.clear()
            value = cls._ids[token] = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
        return value

    def hashes(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Hash of tokens[i:j] for each (i, j): sum id[m] P**(j-1-m), position-free."""
        with np.errstate(over="ignore"):
            return (self.sums[ends] - self.sums[starts]) * self.powers[ends - 1]

    def long_windows(self) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) of every window holding `ngram` words' worth of tokens."""
        if not self.n:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        starts = np.arange(self.n, dtype=np.int64)
        ends = np.searchsorted(self.weight, self.weight[starts] + self.threshold, side="left")
        fits = ends <= self.n
        return starts[fits], ends[fits]

    def fixed_windows(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        starts = np.arange(max(0, self.n - length + 1), dtype=np.int64)
        return starts, starts + length

    def text(self, start: int, end: int) -> str:
        part = self.tokens[start:end]
        return "".join(t if _CJK_RE.match(t) else f" {t} " for t in part).replace("  ", " ").strip()


def eval_windows(text: str, config: DecontaminationConfig) -> tuple[np.ndarray, int | None]:
    """Window hashes of one evaluation text, and its length when it is one short window."""
    windows = Windows(_normal_tokens(text), config)
    if windows.n and windows.weight[-1] >= windows.threshold:
        return windows.hashes(*windows.long_windows()), None
    if windows.n >= config.min_tokens:
        return windows.hashes(np.array([0]), np.array([windows.n])), windows.n
    return np.zeros(0, np.uint64), None


def build_index(config: DecontaminationConfig) -> EvalIndex:
    """The n-gram index of every configured evaluation set (items in set order, then file order)."""
    labels: list[str] = []
    sets: list[str] = []
    per_item: list[np.ndarray] = []
    lengths: set[int] = set()
    counts: dict[str, int] = {}
    for path in config.eval_sets:
        counts[path] = 0
        for item in read_eval_set(path):
            hashes = []
            for text in item.texts:
                found, short = eval_windows(text, config)
                hashes.append(found)
                if short is not None:
                    lengths.add(short)
            labels.append(item.label)
            sets.append(item.eval_set)
            counts[path] += 1
            per_item.append(np.unique(np.concatenate(hashes)) if hashes else np.zeros(0, np.uint64))
    if per_item:
        all_hashes = np.concatenate(per_item)
        all_items = np.concatenate([np.full(len(h), i, dtype=np.int32) for i, h in enumerate(per_item)])
    else:
        all_hashes, all_items = np.zeros(0, np.uint64), np.zeros(0, np.int32)
    order = np.lexsort((all_items, all_hashes))
    all_hashes, all_items = all_hashes[order], all_items[order]
    distinct, first, shared_by = np.unique(all_hashes, return_index=True, return_counts=True)
    template = shared_by >= config.template_min_items
    return EvalIndex(distinct[~template], all_items[first][~template], labels, sets, tuple(sorted(lengths)),
                     counts, int(template.sum()))


# ---------------------------------------------------------------- training records


def find_contamination(text: str, index: EvalIndex, config: DecontaminationConfig) -> tuple[int, int, str] | None:
    """`(item, shared windows, an example window's text)` of the evaluation item `text` shares
    most windows with (ties: the earliest item), or None."""
    if not len(index.hashes):
        return None
    windows = Windows(_normal_tokens(text), config)
    spans = [windows.long_windows()] + [windows.fixed_windows(n) for n in index.short_lengths]
    starts = np.concatenate([s for s, _ in spans])
    ends = np.concatenate([e for _, e in spans])
    if not len(starts):
        return None
    hashes = windows.hashes(starts, ends)
    at = np.minimum(np.searchsorted(index.hashes, hashes), len(index.hashes) - 1)
    hit = index.hashes[at] == hashes
    if not hit.any():
        return None
    items = index.items[at[hit]]
    found, shared = np.unique(items, return_counts=True)
    best = int(found[np.argmax(shared)])  # argmax: first of the ties, found is sorted
    example = int(np.flatnonzero(hit)[np.flatnonzero(items == best)[0]])
    return best, int(shared.max()), windows.text(int(starts[example]), int(ends[example]))


class Decontaminator:
    """The stage, applied by the finishing step to each record that survived dedupe."""

    def __init__(self, config: DecontaminationConfig, reject_text_chars: int = 2000):
        self.config = config
        self.reject_text_chars = reject_text_chars
        self.counters = StageCounters(STAGE)
        self._hits: dict[str, Any] = {}

    def process_document(self, pieces: list[Record], index: EvalIndex) -> list[tuple[Record | None, Reject | None]]:
        """The pieces of one document (a split document is judged whole, so an n-gram across a
        cut counts): all kept, or all rejected naming the item."""
        self.counters.records_in.inc(len(pieces))
        found = find_contamination("\n".join(piece.text for piece in pieces), index, self.config)
        if found is None:
            self.counters.records_out.inc(len(pieces))
            return [(piece, None) for piece in pieces]
        item, shared, example = found
        self.counters.dropped(CONTAMINATED, len(pieces))
        detail = f"{index.labels[item]} (eval set {index.sets[item]}): {shared} shared n-gram(s), e.g. {example!r}"
        return [(None, reject_record(piece, STAGE, CONTAMINATED, score=float(shared), detail=detail,
                                     max_chars=self.reject_text_chars)) for piece in pieces]

    def process_record(self, record: Record, index: EvalIndex) -> tuple[Record | None, Reject | None]:
        return self.process_document([record], index)[0]

    def process_resolved(self, resolved: list[tuple[Record | None, Reject | None]],
                         index: EvalIndex) -> list[tuple[Record | None, Reject | None]]:
        """`(record, reject)` pairs of one file after dedupe, in input order: the kept records
        judged document by document (pieces of a document are consecutive)."""
        out: list[tuple[Record | None, Reject | None]] = []
        pending: list[Record] = []
        for record, reject in resolved + [(None, None)]:
            if pending and (record is None or record.position[:2] != pending[0].position[:2]):
                out += self.process_document(pending, index)
                pending = []
            if record is not None:
                pending.append(record)
            elif reject is not None:
                out.append((None, reject))
        return out


def eval_item_of(detail: str) -> tuple[str, str]:
    """`(evaluation set, item label)` a `contaminated` reject's detail names (see `process_record`)."""
    label, _, rest = detail.partition(" (eval set ")
    return rest.partition("):")[0], label


def eval_sets_digest(config: DecontaminationConfig) -> str:
    """sha256 of the evaluation sets' bytes (every file of a dataset folder; a manifest's own
    bytes, which carry its datasets' content fingerprints): a build is redone when they change.
    Raises FileNotFoundError, before any work starts, for a path that is not there."""
    digest = hashlib.sha256()
    for path in config.eval_sets:
        local = Path(path)
        if local.is_dir():
            files = sorted(p for p in local.rglob("*") if p.is_file())
        elif local.is_file():
            files = [local]
        else:
            raise FileNotFoundError(f"decontamination.eval_sets: {path} does not exist "
                                    "(give JSONL files, binary dataset folders or mixture manifests)")
        digest.update(f"{path}\0".encode())
        for file in files:
            digest.update(f"{file.relative_to(local) if local.is_dir() else ''}\0".encode())
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()
