"""Fingerprints a record carries into the dedupe stages: the exact-dedupe hash of its normalised
text and its MinHash signature (datasketch). Computed per input file, before the checkpoint,
so a relaunched build does not hash finished files again.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib

import apache_beam as beam
import numpy as np
from datasketch import MinHash

from corpus.pipeline.stage import StageCounters
from corpus.pipeline.units import jieba_tokens, tokens
from schemas import Record
from schemas.build_config import ExactDedupeConfig, NearDedupeConfig

try:
    from corpus.pipeline._text_units import shingle_hashes as _compiled_shingle_hashes
except ImportError:  # not built (optional extension): the numpy definition runs instead
    _compiled_shingle_hashes = None

STAGE = "fingerprint"
MINHASH_SCHEME = "affine32"  # datasketch 2.x: 32-bit values
MINHASH_DTYPE = np.dtype("<u4")
_WHITESPACE = re.compile(r"\s+")


def normalise_for_hash(record: Record, config: ExactDedupeConfig) -> str:
    """The text exact dedupe compares: json samples as canonical JSON, txt samples normalised."""
    if record.kind == "json":
        return json.dumps(record.data, ensure_ascii=False, sort_keys=True)
    text = record.text
    if config.lowercase:
        text = text.lower()
    if config.collapse_whitespace:
        text = _WHITESPACE.sub(" ", text).strip()
    return text


def content_hash(record: Record, config: ExactDedupeConfig) -> str:
    """128-bit BLAKE2b of the normalised text, hex."""
    return hashlib.blake2b(normalise_for_hash(record, config).encode("utf-8"), digest_size=16).hexdigest()


def shingle_tokens(text: str, config: NearDedupeConfig) -> list[str]:
    """The tokens shingles are made of: of the lower-cased text, cut by jieba if configured."""
    return jieba_tokens(text.lower()) if config.shingles == "jieba" else tokens(text.lower())


def shingles(text: str, config: NearDedupeConfig) -> set[bytes]:
    """Token n-grams of the lower-cased text: word n-grams for Latin, character n-grams for CJK.
    (The readable definition; signatures use the same n-grams, hashed, via `shingle_hashes`.)"""
    toks = shingle_tokens(text, config)
    n = config.ngram
    if len(toks) <= n:
        return {"\x1f".join(toks).encode()} if toks else set()
    return {"\x1f".join(toks[i:i + n]).encode() for i in range(len(toks) - n + 1)}


_PRIME = np.uint64(1_000_003)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def shingle_hashes(text: str, config: NearDedupeConfig) -> np.ndarray:
    """The distinct shingles of `shingles(text)` as 32-bit hashes, ascending; compiled
    (`_text_units.shingle_hashes`) when built, except for jieba shingles."""
    if _compiled_shingle_hashes is None or config.shingles == "jieba":
        return python_shingle_hashes(text, config)
    return np.frombuffer(_compiled_shingle_hashes(text.lower(), config.ngram), dtype=np.uint32)


def python_shingle_hashes(text: str, config: NearDedupeConfig) -> np.ndarray:
    """`shingle_hashes`' definition, without building the shingle strings: a CRC-32 per token,
    then a polynomial over each n-gram (numpy)."""
    toks = shingle_tokens(text, config)
    if not toks:
        return np.zeros(0, dtype=np.uint32)
    token_hashes = np.fromiter((zlib.crc32(t.encode()) for t in toks), dtype=np.uint64, count=len(toks))
    n = min(config.ngram, len(toks))
    count = len(toks) - n + 1
    grams = np.zeros(count, dtype=np.uint64)
    for offset in range(n):  # uint64 arithmetic wraps, which is what a hash wants
        grams = grams * _PRIME + token_hashes[offset:offset + count]
    mixed = (grams ^ (grams >> np.uint64(31))) * _MIX
    return np.unique((mixed >> np.uint64(32)).astype(np.uint32))


class MinHasher:
    """datasketch MinHash with permutations drawn once (they depend only on num_perm and seed)."""

    def __init__(self, config: NearDedupeConfig):
        self.config = config
        self.permutations = MinHash(num_perm=config.num_perm, seed=config.seed, scheme=MINHASH_SCHEME).permutations

    def signature(self, text: str) -> bytes | None:
        """Little-endian uint32 values; None for a text without a single token."""
        hashes = shingle_hashes(text, self.config)
        if not len(hashes):
            return None
        # The shingles are hashed already: datasketch only permutes and takes minima.
        minhash = MinHash(num_perm=self.config.num_perm, seed=self.config.seed, hashfunc=int,
                          permutations=self.permutations, scheme=MINHASH_SCHEME)
        minhash.update_batch(hashes.tolist())
        return np.asarray(minhash.hashvalues, dtype=MINHASH_DTYPE).tobytes()


def signature_values(signature: bytes) -> np.ndarray:
    return np.frombuffer(signature, dtype=MINHASH_DTYPE)


class ComputeFingerprintsFn(beam.DoFn):
    stage = STAGE
    def __init__(self, exact: ExactDedupeConfig, near: NearDedupeConfig):
        self.exact = exact
        self.near = near

    def setup(self) -> None:
        self.counters = StageCounters(STAGE)
        self.hasher = MinHasher(self.near) if self.near.enabled else None

    def process(self, record: Record):
        self.counters.records_in.inc()
        update = {"content_hash": content_hash(record, self.exact)}
        if self.hasher is not None:
            update["minhash"] = self.hasher.signature(record.text)
        self.counters.records_out.inc()
        yield record.model_copy(update=update)
