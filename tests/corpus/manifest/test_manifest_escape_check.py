"""A `transform.py` that escapes (CPM-Bee's wiki example) must not run on a dataset stored
escaped: `bee manifest validate` says so, naming the dataset and showing a before/after record."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus.dataset import build_dataset
from corpus.manifest.escape_check import escapes_twice
from corpus.manifest.validate import validate_manifest
from corpus.pipeline.escape import escape_text
from manifest_fixtures import entry, write_json

# CPM-Bee README, "wiki" transform: escapes `<` itself.
WIKI_TRANSFORM = '''import random

def rand(n: int, r: random.Random):
    return int(r.random() * n)

def transform(data, num_sample: int, r: random.Random):
    text = data['text']
    mid = rand(len(text) // 2, r)
    ipt = text[:mid].replace("<", "<<")
    ans = text[mid:].replace("<", "<<")
    return {"input": ipt, "<ans>": ans}
'''
NO_ESCAPE = WIKI_TRANSFORM.replace('.replace("<", "<<")', "")
TWICE = "def transform(data, num_sample, r):\n    return {'input': data['text'], '<ans>': data['text']}\n"


def write_escaped_dataset(folder: Path, escaped: bool) -> None:
    texts = [f"Document {i}: if a < b and b < c then a < c, for every {i}." for i in range(20)]
    with build_dataset(folder, "part-00000", extra_meta={"escaped": escaped}) as writer:
        for i, text in enumerate(texts):
            writer.write({"text": escape_text(text) if escaped else text, "id": i})


@pytest.mark.parametrize(("script", "escaped", "problem"), [
    (WIKI_TRANSFORM, True, True),
    (WIKI_TRANSFORM, False, False),   # built with `escape.documents: transform`: the transform escapes once
    (NO_ESCAPE, True, False),
    (TWICE, True, False),             # copying the text twice is not escaping it twice
])
def test_validate_rejects_a_transform_that_escapes_an_escaped_dataset(tmp_path, script, escaped, problem):
    write_escaped_dataset(tmp_path / "wiki", escaped)
    (tmp_path / "transform.py").write_text(script)
    manifest = write_json(tmp_path / "datasets.json", [entry("lm", "wiki", transforms="transform.py", escaped=escaped)])
    problems = validate_manifest(manifest)
    if not problem:
        assert problems == []
        return
    assert len(problems) == 1
    assert "lm.wiki" in problems[0] and "escapes again" in problems[0]
    assert "Before:" in problems[0] and "a << b" in problems[0] and "<<<<" in problems[0]


def test_escaping_twice_is_a_longer_run_of_lt_and_more_of_them():
    assert escapes_twice({"text": "a << b"}, {"input": "a <<<< b"})
    assert not escapes_twice({"text": "a << b"}, {"input": "a << b", "<ans>": "a << b"})
    assert not escapes_twice({"text": "a << b"}, {"input": "a", "<ans>": "<< b"})
