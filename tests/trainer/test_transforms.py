"""Specification of `trainer.transforms`: `$path` mappings with `*` wildcards and `transform.py` scripts."""

from __future__ import annotations

import os

import numpy as np
import pytest

from corpus.manifest.transform_script import TransformScriptError
from trainer.transforms import (
    DatasetTransform,
    TransformError,
    apply_mapping,
    check_mapping,
)

RECORD = {"title": "T", "body": {"question": "Q", "options": {"a": "1", "b": "2"}}, "answer": "a"}


# --------------------------------------------------------------------------- mappings


def test_a_mapping_copies_fields_by_path_and_keeps_constants():
    mapping = {"input": "$body.question", "prompt": "choose one", "<ans>": "$answer"}
    assert apply_mapping(RECORD, mapping) == {"input": "Q", "prompt": "choose one", "<ans>": "a"}


def test_nested_targets_build_nested_objects():
    mapping = {"doc": {"title": "$title", "q": "$body.question"}, "<ans>": {"choice": "$answer"}}
    assert apply_mapping(RECORD, mapping) == {"doc": {"title": "T", "q": "Q"}, "<ans>": {"choice": "a"}}


def test_dotted_keys_are_paths_as_in_cpm_bee():
    assert apply_mapping(RECORD, {"doc.title": "$title"}) == {"doc": {"title": "T"}}


def test_a_wildcard_copies_every_key_at_its_level_under_the_same_name():
    mapping = {"options": {"<option_*>": "$body.options.*"}}
    # `*` inside a key is not a wildcard: only a whole path part is
    with pytest.raises(TransformError):
        apply_mapping(RECORD, mapping)
    mapping = {"options": {"*": "$body.options.*"}, "<ans>": "$answer"}
    assert apply_mapping(RECORD, mapping) == {"options": {"a": "1", "b": "2"}, "<ans>": "a"}


def test_wildcards_bind_in_order():
    record = {"x": {"p": {"u": "pu", "v": "pv"}, "q": {"u": "qu"}}}
    assert apply_mapping(record, {"*": {"*": "$x.*.*"}}) == {"p": {"u": "pu", "v": "pv"}, "q": {"u": "qu"}}


def test_a_copied_object_is_a_copy():
    result = apply_mapping(RECORD, {"body": "$body", "body.extra": "new"})
    assert result["body"]["extra"] == "new"
    assert "extra" not in RECORD["body"]


def test_a_missing_field_names_the_source_path():
    with pytest.raises(TransformError, match=r"\$body.missing.*'missing'"):
        apply_mapping(RECORD, {"x": "$body.missing"})


def test_a_path_through_a_string_is_an_error():
    with pytest.raises(TransformError, match="expected an object"):
        apply_mapping(RECORD, {"x": "$title.deeper"})


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"a.*": "$body.question"}, "same number of `*`"),
        ({"a": "$body.*"}, "same number of `*`"),
        ({"*": "constant"}, "constant value cannot have `*`"),
        ({"a": 3}, "must be a string or a dict"),
    ],
)
def test_mappings_that_can_never_apply_are_refused_up_front(mapping, message):
    with pytest.raises(TransformError, match=message):
        check_mapping(mapping)


# --------------------------------------------------------------------------- scripts


def write_script(path, body: str) -> None:
    path.write_text(body, encoding="utf-8")


def test_a_script_gets_the_incontext_count_and_a_fresh_random_from_one_seed_per_instance(tmp_path):
    write_script(
        tmp_path / "transform.py",
        "def transform(data, num_sample, r):\n"
        "    return {'text': data['text'], 'n': str(num_sample), 'draw': str(r.random())}\n",
    )
    transform = DatasetTransform("transform.py", tmp_path, "task.ds")
    rng = np.random.default_rng(0)
    one = transform.for_instance(rng, 2)
    first, again = one({"text": "a"}), one({"text": "b"})
    assert first["n"] == "2" and first["text"] == "a"
    # the sample and its in-context samples see the same random choices
    assert first["draw"] == again["draw"]
    other = transform.for_instance(rng, 0)({"text": "a"})
    assert other["draw"] != first["draw"] and other["n"] == "0"


def test_a_script_is_reloaded_when_its_file_changes(tmp_path):
    script = tmp_path / "transform.py"
    write_script(script, "def transform(data, num_sample, r):\n    return 'old'\n")
    transform = DatasetTransform(str(script), "/elsewhere", "task.ds")  # absolute paths stay as they are
    rng = np.random.default_rng(0)
    assert transform.for_instance(rng, 0)({}) == "old"
    # the same size, at once, with the mtime set back: still noticed (the inode changed)
    stat = script.stat()
    replacement = tmp_path / "next.py"
    write_script(replacement, "def transform(data, num_sample, r):\n    return 'new'\n")
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    replacement.replace(script)
    assert transform.for_instance(rng, 0)({}) == "new"
    assert not (tmp_path / "__pycache__").exists()


def test_a_script_without_transform_is_refused_when_loaded(tmp_path):
    write_script(tmp_path / "transform.py", "def other(data):\n    return data\n")
    with pytest.raises(TransformScriptError, match="defines no function transform"):
        DatasetTransform("transform.py", tmp_path, "task.ds")


def test_a_missing_or_broken_script_names_its_path(tmp_path):
    with pytest.raises(TransformScriptError, match="nothere.py"):
        DatasetTransform("nothere.py", tmp_path, "task.ds")
    write_script(tmp_path / "broken.py", "def transform(:\n")
    with pytest.raises(TransformScriptError, match="broken.py: import failed"):
        DatasetTransform("broken.py", tmp_path, "task.ds")


# --------------------------------------------------------------------------- per instance


def test_no_transform_passes_records_through_and_draws_nothing():
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    assert DatasetTransform([], ".", "t.d").for_instance(rng, 1)(RECORD) is RECORD
    assert rng.bit_generator.state == before


def test_without_a_transform_plain_text_is_predicted_whole_and_escaped_once():
    rng = np.random.default_rng(0)
    built_here = DatasetTransform([], ".", "lm.web", escaped=True).for_instance(rng, 0)
    assert built_here({"text": "3 << 5"}) == {"input": "", "<ans>": "3 << 5"}
    from_elsewhere = DatasetTransform([], ".", "lm.web", escaped=False).for_instance(rng, 0)
    assert from_elsewhere({"text": "3 < 5"}) == {"input": "", "<ans>": "3 << 5"}


def test_one_of_several_mappings_is_drawn_per_instance():
    transform = DatasetTransform([{"x": "$title"}, {"x": "$answer"}], ".", "t.d")
    rng = np.random.default_rng(1)
    drawn = {transform.for_instance(rng, 0)(RECORD)["x"] for _ in range(40)}
    assert drawn == {"T", "a"}


def test_a_bad_mapping_in_a_manifest_is_refused_when_loaded():
    with pytest.raises(TransformError):
        DatasetTransform([{"x": "$a"}, {"*": "constant"}], ".", "t.d")


def test_seeds_make_script_transforms_reproducible(tmp_path):
    write_script(tmp_path / "t.py", "def transform(data, num_sample, r):\n    return r.randint(0, 10**9)\n")
    transform = DatasetTransform("t.py", tmp_path, "task.ds")
    runs = [transform.for_instance(np.random.default_rng(seed), 0)(None) for seed in (7, 7, 8)]
    assert runs[0] == runs[1] != runs[2]
