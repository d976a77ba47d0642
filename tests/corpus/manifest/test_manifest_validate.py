"""`validate_manifest` lists every problem training would hit, each naming file, entry and field."""

from corpus.manifest.validate import validate_manifest
from manifest_fixtures import cpm_bee_manifest, entry, write_dataset, write_json

GOOD_SCRIPT = "import random\n\ndef transform(data, num_sample, r):\n    return {'text': data['text']}\n"


def test_a_good_manifest_has_no_problems(tmp_path):
    write_dataset(tmp_path / "wiki", [5])
    write_dataset(tmp_path / "poem", [3])
    (tmp_path / "transform.py").write_text(GOOD_SCRIPT)
    manifest = write_json(tmp_path / "datasets.json", [
        entry("lm", "wiki", nlines=5, transforms=[{"input": "$text", "answer": {"*": "$a.*.b"}, "kind": "const"}]),
        entry("poem", "poem", transforms="transform.py", incontext_weight=[0.5, 0.5]),
    ])
    assert validate_manifest(manifest) == []


def test_every_problem_is_listed_not_just_the_first(tmp_path):
    write_dataset(tmp_path / "ok", [5])
    write_dataset(tmp_path / "stale", [5])
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "meta.bin").write_text('{"file_name": "x"}\n')
    (tmp_path / "nometa").mkdir()
    lost = write_dataset(tmp_path / "lost", [2])
    (lost / "part-00000").unlink()
    (tmp_path / "no_def.py").write_text("def other(data, n, r):\n    return data\n")
    (tmp_path / "two_args.py").write_text("def transform(data, n):\n    return data\n")
    (tmp_path / "broken.py").write_text("def transform(data, n, r)\n    return data\n")
    manifest = write_json(tmp_path / "datasets.json", [
        entry("lm", "zero", path="ok", weight=0),
        entry("lm", "missing"),
        entry("lm", "corrupt"),
        entry("lm", "nometa"),
        entry("lm", "lost"),
        entry("lm", "stale", nlines=7),
        {"dataset_name": "bad", "task_name": "lm", "path": "ok", "weight": "heavy"},
        entry("lm", "t1", path="ok", transforms="no_def.py"),
        entry("lm", "t2", path="ok", transforms="two_args.py"),
        entry("lm", "t3", path="ok", transforms="broken.py"),
        entry("lm", "t4", path="ok", transforms="absent.py"),
        entry("lm", "m", path="ok", transforms=[{"a": "$x.*"}, {"b": {"*": "const"}}, {"c": 3}]),
        entry("lm", "m", path="ok"),
    ])
    problems = validate_manifest(manifest)
    m = str(manifest)
    expected = [
        f"{m}: [0] lm.zero: weight: must be > 0",
        f"{m}: [1] lm.missing: path: dataset folder {tmp_path / 'missing'} does not exist",
        f"{m}: [2] lm.corrupt: path: meta.bin unreadable:",
        f"{m}: [3] lm.nometa: path: {tmp_path / 'nometa'} has no meta.bin",
        f"{m}: [4] lm.lost: path: data file part-00000 listed in meta.bin is missing",
        f"{m}: [5] lm.stale: nlines: manifest says 7 but meta.bin says 5",
        f"{m}: [6]: weight: Input should be a valid number",
        f"{m}: [7] lm.t1: transforms: {tmp_path / 'no_def.py'} defines no top-level function transform(data, num_sample, r)",
        f"{m}: [8] lm.t2: transforms: {tmp_path / 'two_args.py'}:1: transform takes (data, n); CPM-Bee calls transform(data, num_sample, r)",
        f"{m}: [9] lm.t3: transforms: {tmp_path / 'broken.py'}:1: syntax error",
        f"{m}: [10] lm.t4: transforms: script {tmp_path / 'absent.py'} does not exist",
        f"{m}: [11] lm.m: transforms[0].a: '$x.*' has 1 '*' but the target has 0: they must match",
        f"{m}: [11] lm.m: transforms[1].b.*: a constant value cannot have '*' in its target",
        f"{m}: [11] lm.m: transforms[2].c: must be a '$source' path or a constant string (got 3)",
        f"{m}: [12] lm.m: identity also used by entry [11]",
    ]
    for want in expected:
        assert any(problem.startswith(want) for problem in problems), (want, problems)
    assert len(problems) == len(expected)


def test_transform_scripts_are_checked_without_running_them(tmp_path):
    write_dataset(tmp_path / "ok", [1])
    marker = tmp_path / "ran"
    (tmp_path / "t.py").write_text(f"open({str(marker)!r}, 'w').close()\n" + GOOD_SCRIPT)
    manifest = write_json(tmp_path / "datasets.json", [entry("lm", "ok", transforms="t.py")])
    assert validate_manifest(manifest) == []
    assert not marker.exists()


def test_transform_bound_by_import_or_with_extra_defaults_is_accepted(tmp_path):
    write_dataset(tmp_path / "ok", [1])
    (tmp_path / "a.py").write_text("from mylib import transform\n")
    (tmp_path / "b.py").write_text("def transform(data, num_sample, r, extra=1, *, k=2):\n    return data\n")
    (tmp_path / "c.py").write_text("async def transform(data, num_sample, r):\n    return data\n")
    manifest = write_json(tmp_path / "datasets.json", [
        entry("lm", "a", path="ok", transforms="a.py"),
        entry("lm", "b", path="ok", transforms="b.py"),
        entry("lm", "c", path="ok", transforms="c.py"),
    ])
    problems = validate_manifest(manifest)
    assert len(problems) == 1 and "lm.c: transforms:" in problems[0] and "async" in problems[0]


def test_cpm_bee_manifest_with_absent_dataset_names_the_folder(tmp_path):
    manifest = write_json(tmp_path / "datasets.json", cpm_bee_manifest())
    assert validate_manifest(manifest) == [
        f"{manifest}: [0] mlm.pretrain: path: dataset folder /path/to/dataset does not exist"
    ]


def test_file_level_problems(tmp_path):
    assert validate_manifest(tmp_path / "none.json")[0].endswith("cannot read: No such file or directory")
    bad = tmp_path / "bad.json"
    bad.write_text("[\n  {,\n")
    assert validate_manifest(bad) == [f"{bad}: line 2 column 4: invalid JSON: Expecting property name enclosed in double quotes"]
    assert "must be a JSON list" in validate_manifest(write_json(tmp_path / "obj.json", {"a": 1}))[0]
    assert "no datasets" in validate_manifest(write_json(tmp_path / "empty.json", []))[0]


def test_a_mixture_without_lines_is_a_problem(tmp_path):
    write_dataset(tmp_path / "empty", [0])
    manifest = write_json(tmp_path / "datasets.json", [entry("lm", "empty")])
    assert validate_manifest(manifest) == [
        f"{manifest}: (top level): weight × nlines sums to 0: an empty mixture (CPM-Bee stops with 'Empty datasets')"
    ]
