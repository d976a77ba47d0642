"""Stages 5 and 6: exact and MinHash near dedupe over record fingerprints, global, keeping the
earliest input position whatever order the records arrive in."""

from __future__ import annotations

import pickle
import random
import subprocess
import sys

import apache_beam as beam
import numpy as np
from datasketch import MinHash
from datasketch.minhash import _fmix
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from corpus.pipeline.dedupe_exact import ExactDedupe
from corpus.pipeline.dedupe_minhash import MinHashDedupe, bands_and_rows, estimated_jaccard
from corpus.pipeline.fingerprint import (
    MINHASH_DTYPE,
    MINHASH_SCHEME,
    ComputeFingerprints,
    MinHasher,
    char_shingle_hashes,
    content_hash,
    draw_permutations,
    fmix32,
    sample_content,
    shingles,
)
from corpus.pipeline.stage import Fingerprint, location
from schemas import Record
from schemas.build_config import ExactDedupeConfig, NearDedupeConfig, ReadConfig

NEAR = NearDedupeConfig()


def record(path: str, line: int, text: str) -> Fingerprint:
    r = Record(source_path=path, source_line=line, kind="text", text=text)
    return Fingerprint.of(r.model_copy(update={"content_hash": content_hash(r, ExactDedupeConfig()),
                                               "minhash": MinHasher(NEAR).signature(text)}))


def prose(seed: int, words: int = 120) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega", "sigma"]) + str(rng.randrange(500))
                    for _ in range(words))


def chinese(seed: int, chars: int = 300) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏") for _ in range(chars))


def test_token_shingles_are_character_ngrams_for_cjk_and_word_ngrams_for_latin():
    config = NearDedupeConfig(ngram=5, shingles="words_and_chars")
    assert shingles("天地玄黄宇宙", config) == {"天\x1f地\x1f玄\x1f黄\x1f宇".encode(), "地\x1f玄\x1f黄\x1f宇\x1f宙".encode()}
    assert len(shingles("one two three four five six", config)) == 2


def test_default_shingles_are_character_5grams_of_the_collapsed_lowercase_text():
    assert shingles("天地玄黄宇宙", NEAR) == {"天地玄黄宇".encode(), "地玄黄宇宙".encode()}
    assert shingles("Ab  c\nD", NEAR) == {"ab c ".encode(), "b c d".encode()}
    assert len(char_shingle_hashes("abcdefg abcdefg", 5)) == len(shingles("abcdefg abcdefg", NEAR))


def test_signatures_equal_datasketch_minhash_of_the_same_hashes():
    hasher = MinHasher(NEAR)
    hashes = char_shingle_hashes(prose(4) + chinese(4), 5)
    reference = MinHash(num_perm=NEAR.num_perm, seed=NEAR.seed, hashfunc=int, permutations=hasher.permutations,
                        scheme=MINHASH_SCHEME)
    reference.update_batch(hashes.tolist())
    assert hasher.signature_of_hashes(hashes) == np.asarray(reference.hashvalues, dtype=MINHASH_DTYPE).tobytes()


def test_local_murmur_finaliser_equals_datasketch_s():
    values = np.concatenate([np.arange(1000, dtype=np.uint32), np.random.default_rng(3).integers(
        0, 1 << 32, 5000, dtype=np.uint64).astype(np.uint32), np.array([0xFFFFFFFF], dtype=np.uint32)])
    assert np.array_equal(fmix32(values.reshape(-1, 1)), _fmix(values.reshape(-1, 1), 32))


WORKER_SCRIPT = """
import pickle, sys
from schemas import Record
stage = pickle.loads(sys.stdin.buffer.read())
stage.setup()
[out] = stage.process(Record(source_path="a.txt", source_line=1, kind="text", text="the same text in a worker"))
sys.stdout.write(out.minhash.hex() + "\\n")
sys.stdout.write(" ".join(m for m in ("datasketch", "scipy", "corpus.pipeline.build") if m in sys.modules))
"""


def test_workers_get_the_permutations_drawn_where_the_pipeline_is_built_and_never_import_datasketch():
    """datasketch (which imports scipy) draws the permutations once, in the driver; a worker
    process that unpickles the stage computes the same signatures without importing it."""
    stage = ComputeFingerprints(ExactDedupeConfig(), NEAR)
    assert all(np.array_equal(mine, theirs) for mine, theirs in zip(stage.permutations, draw_permutations(NEAR)))
    worker = subprocess.run([sys.executable, "-c", WORKER_SCRIPT], input=pickle.dumps(stage), capture_output=True,
                            check=True)
    signature, imported = worker.stdout.decode().split("\n")
    assert bytes.fromhex(signature) == MinHasher(NEAR).signature("the same text in a worker")
    assert imported == ""


def _char_jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a, NEAR), shingles(b, NEAR)
    return len(sa & sb) / len(sa | sb)


def _edited(text: str, rate: float, rng: random.Random, alphabet: str) -> str:
    chars = list(text)
    for index in range(len(chars)):
        if rng.random() < rate:
            chars[index] = rng.choice(alphabet)
    return "".join(chars)


def test_estimated_similarity_tracks_character_5gram_jaccard_for_latin_and_cjk():
    """What "near duplicate" means: estimated Jaccard of character 5-grams >= threshold."""
    rng = random.Random(7)
    hasher = MinHasher(NEAR)
    errors = []
    for seed in range(12):
        for base, alphabet in ((prose(seed, 200), "abcdefghij "), (chinese(seed, 600), "天地玄黄宇宙洪荒日月")):
            edited = _edited(base, rng.choice([0.002, 0.01, 0.03, 0.08]), rng, alphabet)
            errors.append(abs(estimated_jaccard(hasher.signature(base), hasher.signature(edited))
                              - _char_jaccard(base, edited)))
    assert max(errors) < 0.2 and sum(errors) / len(errors) < 0.06


def sample_hash(data: dict) -> str:
    r = Record(source_path="a.jsonl", source_line=1, kind="json", text="", data=data)
    return content_hash(r, ExactDedupeConfig(), ReadConfig().metadata_fields)


def test_structured_samples_compare_on_content_with_options_by_text():
    sample = {"id": 1, "question": "Q?", "options": {"<option_0>": "red", "<option_1>": "blue"}, "<ans>": "<option_1>"}
    reordered = {"id": 2, "source": "b", "question": "Q?", "options": {"<option_0>": "blue", "<option_1>": "red"},
                 "<ans>": "<option_0>"}
    wrong_answer = {"question": "Q?", "options": {"<option_0>": "blue", "<option_1>": "red"}, "<ans>": "<option_1>"}
    assert sample_hash(sample) == sample_hash(reordered)
    assert sample_hash(sample) != sample_hash(wrong_answer)
    options = {"<option_0>": "a", "<option_1>": "b"}
    judged = {"question": "Q?", "options": options, "<ans>": {"<option_0>": "yes", "<option_1>": "no"}}
    assert sample_hash(judged) != sample_hash({**judged, "<ans>": {"<option_0>": "no", "<option_1>": "yes"}})
    assert sample_content(sample, ReadConfig().metadata_fields) == {"question": "Q?", "options": ["blue", "red"],
                                                                    "<ans>": {"option": "blue"}}


def test_documents_compare_on_text_whatever_their_metadata():
    a = Record(source_path="a.jsonl", source_line=1, kind="text", text="Same  text", metadata={"id": 7})
    b = Record(source_path="b.txt", source_line=3, kind="text", text="same text")
    assert content_hash(a, ExactDedupeConfig()) == content_hash(b, ExactDedupeConfig())


def test_exact_duplicates_keep_the_earliest_position_across_files():
    text = "The same words. " * 10
    records = [record("b.txt", 1, text), record("a.txt", 9, "  the SAME words. " * 10), record("a.txt", 2, text),
               record("a.txt", 3, "Something else entirely. " * 10)]
    with TestPipeline() as p:
        out = p | beam.Create(records) | ExactDedupe()
        assert_that(out.kept | "K" >> beam.Map(lambda f: location(f.position)), equal_to(["a.txt:2", "a.txt:3"]), label="kept")
        assert_that(out.verdicts | "R" >> beam.Map(lambda v: (location(v.position), v.reason, v.duplicate_of)),
                    equal_to([("b.txt:1", "exact_duplicate", "a.txt:2"), ("a.txt:9", "exact_duplicate", "a.txt:2")]),
                    label="verdicts")


def test_near_duplicates_cluster_globally_and_the_earliest_member_is_kept():
    base, other, zh = prose(1), prose(2), chinese(3)
    edited = base.replace(base.split()[40], "EDITED", 1)
    zh_edited = zh[:150] + "改" + zh[151:]
    assert estimated_jaccard(MinHasher(NEAR).signature(base), MinHasher(NEAR).signature(edited)) >= 0.8
    records = [record("z.txt", 1, edited), record("a.txt", 5, base), record("m.txt", 1, edited + " tail"),
               record("a.txt", 6, other), record("c.txt", 2, zh_edited), record("c.txt", 1, zh)]
    random.Random(0).shuffle(records)
    with TestPipeline() as p:
        verdicts = p | beam.Create(records) | MinHashDedupe(NEAR.model_copy(update={"cc_rounds": 3}))
        # the kept member of each cluster gets its size; records in no cluster get no verdict
        assert_that(verdicts | "V" >> beam.Map(lambda v: (location(v.position), v.reason, v.duplicate_of, v.cluster_size)),
                    equal_to([("a.txt:5", None, None, 3), ("c.txt:1", None, None, 2),
                              ("z.txt:1", "near_duplicate", "a.txt:5", 1), ("m.txt:1", "near_duplicate", "a.txt:5", 1),
                              ("c.txt:2", "near_duplicate", "c.txt:1", 1)]))


def test_bands_and_rows_derive_from_threshold_when_unset():
    assert bands_and_rows(NearDedupeConfig()) == (14, 8)
    bands, rows = bands_and_rows(NearDedupeConfig(bands=None, rows=None, threshold=0.7, num_perm=128))
    assert bands * rows <= 128 and bands > 1
