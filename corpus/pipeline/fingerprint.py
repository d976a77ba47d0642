"""Fingerprints a document carries into the dedupe stages: the exact-dedupe hash of its
normalised content and its MinHash signature (datasketch's permutations). Computed per input
file on whole documents, before they are split, so a document and its copy match however they
are later cut, and before the checkpoint, so a relaunched build does not hash finished files again.

What "content" means:
- a text document (txt line, or a JSON record's text field): its text; the record's other
  fields (ids, sources) are metadata and never compared;
- a structured sample: the object without its top-level `read.metadata_fields`; every
  `<option_N>` object compared as the sorted list of its option texts, and an `<ans>` that
  names an option replaced by that option's text (so the same question with its options
  reordered and the answer renumbered to match is the same content).

Near duplicates (text documents; structured samples only with `near_dedupe.apply_to_json`; the
default `near_dedupe.shingles: chars`): the shingles are the character
5-grams of the lower-cased, whitespace-collapsed content text, for Latin and CJK text alike,
so the signatures estimate the character-5-gram Jaccard similarity of two documents.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import zlib
from typing import Any

import numpy as np

from corpus.pipeline.read import json_text_view
from corpus.pipeline.stage import Stage, StageCounters
from corpus.pipeline.units import jieba_text_units, text_units
from schemas import Record
from schemas.build_config import ExactDedupeConfig, NearDedupeConfig

try:
    from corpus.pipeline._text_units import shingle_hashes as _compiled_shingle_hashes
except ImportError:  # not built (optional extension): the numpy definition runs instead
    _compiled_shingle_hashes = None
try:
    from corpus.pipeline._text_units import char_minhash as _compiled_char_minhash
except ImportError:  # not built, or built before char_minhash existed (reinstall to rebuild)
    _compiled_char_minhash = None
if sys.byteorder != "little":  # the compiled signature is native-endian; signatures are little-endian
    _compiled_char_minhash = None

STAGE = "fingerprint"
MINHASH_SCHEME = "affine32"  # datasketch 2.x: 32-bit values
MINHASH_DTYPE = np.dtype("<u4")
_OPTION_KEY = re.compile(r"^<option_\d+>$")
MINHASH_CHUNK = 4096  # shingles per (chunk x num_perm) block of the signature computation


def _is_options(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(_OPTION_KEY.match(key) for key in value)


def sample_content(data: dict[str, Any], metadata_fields: list[str]) -> dict[str, Any]:
    """What dedupe compares of a structured sample: the object without its top-level metadata
    fields; option objects as the sorted list of their texts; an `<ans>` naming an option (or
    several) resolved to the option text(s)."""
    options: dict[str, Any] = {}

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if _is_options(node):
                options.update(node)
            for child in node.values():
                collect(child)
        elif isinstance(node, list):
            for child in node:
                collect(child)

    def canonical(node: Any) -> Any:
        if _is_options(node):
            return sorted((canonical(child) for child in node.values()), key=lambda v: json.dumps(v, ensure_ascii=False))
        if isinstance(node, dict):
            return {key: canonical(child) for key, child in node.items()}
        if isinstance(node, list):
            return [canonical(child) for child in node]
        return node

    def answer(node: Any) -> Any:
        if isinstance(node, str) and node in options:
            return {"option": canonical(options[node])}
        if isinstance(node, dict):
            return {key if key not in options else "option: " + json.dumps(canonical(options[key]), ensure_ascii=False):
                    answer(child) for key, child in node.items()}
        if isinstance(node, list):
            return [answer(child) for child in node]
        return node

    content = {key: value for key, value in data.items() if key not in metadata_fields}
    collect({key: value for key, value in content.items() if key != "<ans>"})  # an <ans> may be keyed by options
    return {key: answer(value) if key == "<ans>" else canonical(value) for key, value in content.items()}


def content_text(record: Record, metadata_fields: list[str]) -> str:
    """The text near dedupe compares: a document's text, or the string values of a sample's content."""
    if record.kind == "json" and record.data is not None:
        return json_text_view(sample_content(record.data, metadata_fields))
    return record.text


def _normalise_text(text: str, config: ExactDedupeConfig) -> str:
    if config.lowercase:
        text = text.lower()
    if config.collapse_whitespace:
        text = collapse_whitespace(text)
    return text


def collapse_whitespace(text: str) -> str:
    """Runs of whitespace as one space, none at the ends: `re.sub(r"\\s+", " ", text).strip()`
    (`str.split` splits at the same characters, `\\s` and `str.isspace` being one class), in
    about half the time."""
    return " ".join(text.split())


def _normalise_value(value: Any, config: ExactDedupeConfig) -> Any:
    if isinstance(value, str):
        return _normalise_text(value, config)
    if isinstance(value, dict):
        return {key: _normalise_value(child, config) for key, child in value.items()}
    if isinstance(value, list):
        return [_normalise_value(child, config) for child in value]
    return value


def normalise_for_hash(record: Record, config: ExactDedupeConfig, metadata_fields: list[str] | None = None) -> str:
    """The string exact dedupe compares: a document's normalised text; a structured sample's
    content (`sample_content`, string values normalised) as canonical JSON."""
    if record.kind == "json" and record.data is not None:
        content = sample_content(record.data, metadata_fields if metadata_fields is not None else [])
        return json.dumps(_normalise_value(content, config), ensure_ascii=False, sort_keys=True)
    return _normalise_text(record.text, config)


def content_hash(record: Record, config: ExactDedupeConfig, metadata_fields: list[str] | None = None) -> str:
    """128-bit BLAKE2b of the normalised content, hex."""
    return hash_normalised(normalise_for_hash(record, config, metadata_fields))


def hash_normalised(normalised: str) -> str:
    """`content_hash` of a content already normalised (`normalise_for_hash`)."""
    return hashlib.blake2b(normalised.encode("utf-8"), digest_size=16).hexdigest()


def shingle_tokens(text: str, config: NearDedupeConfig) -> list[str]:
    """The tokens of token shingles (`words_and_chars`, `jieba`): of the lower-cased text."""
    return jieba_text_units(text.lower()) if config.shingles == "jieba" else text_units(text.lower())


def shingle_text(text: str) -> str:
    """What character shingles are cut from: lower-cased, whitespace runs as one space, stripped
    (what exact dedupe hashes with its default `lowercase` and `collapse_whitespace`)."""
    return collapse_whitespace(text.lower())


def shingles(text: str, config: NearDedupeConfig) -> set[bytes]:
    """The readable definition of the shingles (signatures hash the same n-grams, via `shingle_hashes`):
    `chars`: character n-grams of `shingle_text(text)`; `words_and_chars` / `jieba`: token n-grams
    (words for Latin, characters or jieba words for CJK). A text shorter than n is one shingle."""
    n = config.ngram
    if config.shingles == "chars":
        chars = shingle_text(text)
        if len(chars) <= n:
            return {chars.encode()} if chars else set()
        return {chars[i:i + n].encode() for i in range(len(chars) - n + 1)}
    toks = shingle_tokens(text, config)
    if len(toks) <= n:
        return {"\x1f".join(toks).encode()} if toks else set()
    return {"\x1f".join(toks[i:i + n]).encode() for i in range(len(toks) - n + 1)}


# MurmurHash3's 32-bit finaliser (datasketch's `minhash._fmix` at width 32; a test holds them equal)
_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))


def fmix32(hashes: np.ndarray) -> np.ndarray:
    """The MurmurHash3 finaliser of uint32 values (wrapping uint32 arithmetic), as datasketch
    applies it before its affine32 permutations."""
    s1, m1, s2, m2, s3 = _FMIX32
    hashes = hashes ^ (hashes >> s1)
    hashes = hashes * m1
    hashes = hashes ^ (hashes >> s2)
    hashes = hashes * m2
    return hashes ^ (hashes >> s3)


def draw_permutations(config: NearDedupeConfig) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutations (a, b) for `num_perm` and `seed`, as uint32 arrays.
    Drawn where the pipeline is built: the workers get the arrays inside `ComputeFingerprints`
    and never import datasketch (its package imports scipy, ~0.6 CPU-s per worker start)."""
    from datasketch import MinHash  # here only: see above

    a, b = MinHash(num_perm=config.num_perm, seed=config.seed, scheme=MINHASH_SCHEME).permutations
    return np.asarray(a, dtype=np.uint32), np.asarray(b, dtype=np.uint32)


_PRIME = np.uint64(1_000_003)
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _polynomial_hashes(units: np.ndarray, n: int, distinct: bool = True) -> np.ndarray:
    """32-bit hashes of the n-grams of `units` (uint64 values): distinct and ascending, or (not
    `distinct`) one per n-gram in text order, which is all a MinHash needs."""
    n = min(n, len(units))
    count = len(units) - n + 1
    grams = units[:count].copy()
    for offset in range(1, n):  # uint64 arithmetic wraps, which is what a hash wants
        grams *= _PRIME
        grams += units[offset:offset + count]
    grams ^= grams >> np.uint64(31)
    grams *= _MIX
    hashes = (grams >> np.uint64(32)).astype(np.uint32)
    return np.unique(hashes) if distinct else hashes


def char_shingle_hashes(text: str, n: int, distinct: bool = True) -> np.ndarray:
    """The character n-grams of `shingle_text(text)` as 32-bit hashes (a polynomial over the code
    points, numpy): distinct and ascending, or one per n-gram (`distinct=False`)."""
    return _char_hashes(shingle_text(text), n, distinct)


def _char_hashes(chars: str, n: int, distinct: bool) -> np.ndarray:
    if not chars:
        return np.zeros(0, dtype=np.uint32)
    points = np.frombuffer(chars.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    points += np.uint64(1)
    return _polynomial_hashes(points, n, distinct)


def shingle_hashes(text: str, config: NearDedupeConfig) -> np.ndarray:
    """The distinct shingles of `shingles(text)` as 32-bit hashes, ascending; token shingles
    compiled (`_text_units.shingle_hashes`) when built, except for jieba shingles."""
    if config.shingles == "chars":
        return char_shingle_hashes(text, config.ngram)
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
    return _polynomial_hashes(token_hashes, config.ngram)


class MinHasher:
    """datasketch MinHash with permutations drawn once (they depend only on num_perm and seed):
    `permutations` as `draw_permutations(config)` returns them, drawn here if not given."""

    def __init__(self, config: NearDedupeConfig, permutations: tuple[np.ndarray, np.ndarray] | None = None):
        self.config = config
        self.permutations = permutations if permutations is not None else draw_permutations(config)
        a, b = self.permutations
        self._a = np.asarray(a, dtype=np.uint32).reshape(1, -1)
        self._b = np.asarray(b, dtype=np.uint32).reshape(1, -1)
        self._a_bytes, self._b_bytes = self._a.tobytes(), self._b.tobytes()

    def signature(self, text: str) -> bytes | None:
        """Little-endian uint32 values; None for a text without a single shingle."""
        if self.config.shingles == "chars":
            return self.char_signature(shingle_text(text))
        return self.signature_of_hashes(shingle_hashes(text, self.config))

    def char_signature(self, chars: str) -> bytes | None:
        """`signature` of a text already reduced to `shingle_text(text)`: compiled
        (`_text_units.char_minhash`, one pass, no array per document) when built, else numpy."""
        if _compiled_char_minhash is not None:
            return _compiled_char_minhash(chars, self.config.ngram, self._a_bytes, self._b_bytes)
        return self.numpy_char_signature(chars)

    def numpy_char_signature(self, chars: str) -> bytes | None:
        """`char_signature`'s definition: every n-gram's hash in text order (repeated shingles do
        not change a minimum: no need to dedupe them), then `signature_of_hashes`."""
        return self.signature_of_hashes(_char_hashes(chars, self.config.ngram, distinct=False))

    def signature_of_hashes(self, hashes: np.ndarray) -> bytes | None:
        """datasketch's affine32 MinHash of already hashed shingles (its `update_batch` with
        `hashfunc=int`: the MurmurHash3 finaliser, then `a*h + b` mod 2^32, column minima),
        computed in blocks of `MINHASH_CHUNK` shingles without a Python call per shingle."""
        if not len(hashes):
            return None
        values = np.full(self._a.shape[1], np.iinfo(np.uint32).max, dtype=np.uint32)
        for start in range(0, len(hashes), MINHASH_CHUNK):
            mixed = fmix32(hashes[start:start + MINHASH_CHUNK].astype(np.uint32).reshape(-1, 1))
            permuted = mixed * self._a
            permuted += self._b
            np.minimum(values, permuted.min(axis=0), out=values)
        return values.astype(MINHASH_DTYPE).tobytes()


def signature_values(signature: bytes) -> np.ndarray:
    return np.frombuffer(signature, dtype=MINHASH_DTYPE)


class ComputeFingerprints(Stage):
    """A whole document (before split) -> the same record with `content_hash` and `minhash` set;
    its pieces inherit both. Built where the pipeline is built, which draws the MinHash
    permutations (`draw_permutations`); the stage carries them to the workers."""

    stage = STAGE

    def __init__(self, exact: ExactDedupeConfig, near: NearDedupeConfig, metadata_fields: list[str] | None = None):
        self.exact = exact
        self.near = near
        self.metadata_fields = list(metadata_fields) if metadata_fields is not None else []
        self.permutations = draw_permutations(near) if near.enabled else None

    def setup(self) -> None:
        self.counters = StageCounters(STAGE)
        self.hasher = MinHasher(self.near, self.permutations) if self.near.enabled else None
        # exact dedupe's normal form is then `shingle_text`'s: a text is lowered and collapsed once
        self.shared_normalisation = (self.exact.lowercase and self.exact.collapse_whitespace
                                     and (self.hasher is None or self.near.shingles == "chars"))

    def process(self, record: Record):
        self.counters.records_in.inc()
        near = self.hasher is not None and (record.kind == "text" or self.near.apply_to_json)
        if record.kind == "text" and self.shared_normalisation:  # one normalised text for both hashes
            chars = shingle_text(record.text)
            update = {"content_hash": hash_normalised(chars)}
            if near:
                update["minhash"] = self.hasher.char_signature(chars)
        else:
            update = {"content_hash": content_hash(record, self.exact, self.metadata_fields)}
            if near:
                update["minhash"] = self.hasher.signature(content_text(record, self.metadata_fields))
        self.counters.records_out.inc()
        yield record.model_copy(update=update)
