"""Stages 5 and 6: exact and MinHash near dedupe over record fingerprints, global, keeping the
earliest input position whatever order the records arrive in."""

from __future__ import annotations

import random

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from corpus.pipeline.dedupe_exact import ExactDedupe
from corpus.pipeline.dedupe_minhash import MinHashDedupe, bands_and_rows, estimated_jaccard
from corpus.pipeline.fingerprint import MinHasher, content_hash, shingles
from corpus.pipeline.stage import Fingerprint, location
from schemas import Record
from schemas.build_config import ExactDedupeConfig, NearDedupeConfig

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


def test_cjk_shingles_are_character_ngrams_and_latin_shingles_word_ngrams():
    assert shingles("天地玄黄宇宙", NearDedupeConfig(ngram=5)) == {"天\x1f地\x1f玄\x1f黄\x1f宇".encode(), "地\x1f玄\x1f黄\x1f宇\x1f宙".encode()}
    assert len(shingles("one two three four five six", NearDedupeConfig(ngram=5))) == 2


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
