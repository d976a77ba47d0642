"""Fault and hostile-input suite of `bee corpus build`: outputs that must not be replaced,
interrupted swaps, concurrent builds, hostile lines, stale inputs and corrupt checkpoints.
Each case builds its own tiny corpus; the SIGKILL cases run a build in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corpus.pipeline.build import BuildError, build_corpus
from corpus.pipeline.output_folder import (
    BUILD_STAMP,
    UnsafeOutput,
    new_staging,
    old_path,
    output_lock,
    recover_swap,
    remove_our_folder,
    staging_path,
    write_stamp,
)
from schemas import BuildConfig
from tests.corpus.pipeline.conftest import en_doc

ROOT = Path(__file__).resolve().parents[3]


def small_corpus(root: Path, lines: int = 4) -> Path:
    (root / "txt").mkdir(parents=True, exist_ok=True)
    (root / "txt" / "a.txt").write_text("\n".join(en_doc(i) for i in range(lines)) + "\n", encoding="utf-8")
    return root


def config_for(inputs: Path, output: Path, **extra) -> BuildConfig:
    return BuildConfig(input=[str(inputs)], output=str(output), dataset_name="tiny", task_name="test", **extra)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- never delete what it did not write -------------------------------------------------------


@pytest.mark.parametrize("where", ["same", "parent", "inside"])
def test_output_overlapping_an_input_root_is_refused_and_nothing_is_deleted(tmp_path, where):
    inputs = small_corpus(tmp_path / "data" / "raw")
    (tmp_path / "data" / "notes.txt").write_text("unrelated\n")
    output = {"same": inputs, "parent": tmp_path / "data", "inside": inputs / "out"}[where]
    before = tree(tmp_path)
    with pytest.raises(UnsafeOutput, match="input root .*choose an output outside every input root"):
        build_corpus(config_for(inputs, output), [], log=lambda line: None)
    assert tree(tmp_path) == before


def test_work_folder_or_manifest_inside_an_input_root_is_refused(tmp_path):
    inputs = small_corpus(tmp_path / "raw")
    with pytest.raises(UnsafeOutput, match="work folder"):
        build_corpus(config_for(inputs, tmp_path / "ds", work_dir=str(inputs / "work")), [], log=lambda line: None)
    with pytest.raises(UnsafeOutput, match="manifest"):
        build_corpus(config_for(inputs, tmp_path / "ds", manifest=str(inputs / "datasets.json")), [],
                     log=lambda line: None)


def test_non_empty_folder_no_build_wrote_is_refused(tmp_path):
    inputs = small_corpus(tmp_path / "raw")
    output = tmp_path / "home"
    (output / "thesis").mkdir(parents=True)
    (output / "thesis" / "chapter1.tex").write_text("months of work\n")
    (output / BUILD_STAMP).write_text(json.dumps({"tool": "something else"}))
    before = tree(output)
    with pytest.raises(UnsafeOutput, match="non-empty folder that no corpus build wrote"):
        build_corpus(config_for(inputs, output), [], log=lambda line: None)
    assert tree(output) == before


@pytest.mark.parametrize("leftover", [staging_path, old_path])
def test_foreign_building_or_old_folder_is_left_alone(tmp_path, leftover):
    inputs = small_corpus(tmp_path / "raw")
    output = tmp_path / "ds"
    foreign = leftover(output)
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not a build\n")
    with pytest.raises(UnsafeOutput, match="not written by a corpus build"):
        build_corpus(config_for(inputs, output), [], log=lambda line: None)
    assert (foreign / "keep.txt").read_text() == "not a build\n"


def test_output_url_without_a_beam_filesystem_is_refused_with_what_to_do(tmp_path):
    inputs = small_corpus(tmp_path / "raw")
    with pytest.raises(UnsafeOutput, match=r"no Beam filesystem for foo:// can be used here; use s3://"):
        build_corpus(config_for(inputs, "foo://bucket/ds"), [], log=lambda line: None)
    with pytest.raises(UnsafeOutput, match="write a plain local path instead of file://"):
        build_corpus(config_for(inputs, f"file://{tmp_path}/ds"), [], log=lambda line: None)


def test_folder_is_deleted_stamp_last(tmp_path):
    folder = tmp_path / "x.old"
    folder.mkdir()
    write_stamp(folder, {"build_hash": "h"})
    (folder / "data").mkdir()
    (folder / "data" / "f").write_text("x")
    remove_our_folder(folder)
    assert not folder.exists()
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UnsafeOutput):
        remove_our_folder(plain)
    assert plain.exists()


# --- interrupted swaps and concurrent builds ---------------------------------------------------


def fake_build(folder: Path, build_hash: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "data" / "meta.bin").write_text(build_hash)
    write_stamp(folder, {"build_hash": build_hash})
    return folder


def test_recover_finishes_a_swap_cut_between_its_renames(tmp_path):
    output = tmp_path / "ds"
    fake_build(old_path(output), "old")
    fake_build(staging_path(output), "new")
    recover_swap(output, log=lambda line: None)
    assert (output / "data" / "meta.bin").read_text() == "new"
    assert not old_path(output).exists() and not staging_path(output).exists()


def test_recover_restores_the_previous_build_when_staging_is_unfinished(tmp_path):
    output = tmp_path / "ds"
    fake_build(old_path(output), "old")
    new_staging(output)  # stamped `building`: the new build never finished
    recover_swap(output, log=lambda line: None)
    assert (output / "data" / "meta.bin").read_text() == "old"
    assert not old_path(output).exists()


def test_recover_removes_a_half_deleted_old_folder(tmp_path):
    output = fake_build(tmp_path / "ds", "new")
    old = fake_build(old_path(output), "old")
    (old / "data" / "meta.bin").unlink()  # deletion cut short: the stamp goes last, so it is still there
    recover_swap(output, log=lambda line: None)
    assert not old.exists() and (output / "data" / "meta.bin").read_text() == "new"


def test_swap_exchanges_the_folders_or_falls_back_to_two_renames(tmp_path, monkeypatch):
    import corpus.pipeline.output_folder as output_folder

    for atomic in (True, False):
        output = tmp_path / f"ds{atomic}"
        fake_build(output, "old")
        fake_build(staging_path(output), "new")
        if not atomic:
            monkeypatch.setattr(output_folder, "exchange", lambda a, b: False)
        output_folder.swap_into_place(staging_path(output), output)
        assert (output / "data" / "meta.bin").read_text() == "new"
        assert not staging_path(output).exists() and not old_path(output).exists()


def test_second_build_into_a_locked_output_exits_with_a_clear_message(tmp_path):
    inputs = small_corpus(tmp_path / "raw")
    output = tmp_path / "ds"
    with output_lock(output):
        with pytest.raises(BuildError, match=r"another build is writing .*ds \(process \d+ holds"):
            build_corpus(config_for(inputs, output), [], log=lambda line: None)


def run_build_process(inputs: Path, output: Path, kill_at: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("BEE_FAULT_KILL_AT", None)
    if kill_at:
        env["BEE_FAULT_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "corpus.pipeline.cli", "--input", str(inputs), "--output", str(output),
                           "--dataset-name", "tiny", "--task-name", "test"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_cwd(output))


def tmp_cwd(output: Path) -> Path:
    return output.parent


@pytest.mark.integration
@pytest.mark.parametrize("point", ["before_swap", "swap_before_cleanup", "before_manifest"])
def test_build_killed_during_the_swap_is_consistent_after_a_relaunch(tmp_path, point):
    inputs = small_corpus(tmp_path / "raw")
    output = tmp_path / "ds"
    assert run_build_process(inputs, output, None).returncode == 0
    (inputs / "txt" / "b.txt").write_text(en_doc(99) + "\n", encoding="utf-8")  # a second build has work to do
    killed = run_build_process(inputs, output, point)
    assert killed.returncode == -9
    relaunch = run_build_process(inputs, output, None)
    assert relaunch.returncode == 0, relaunch.stderr
    assert not old_path(output).exists() and not staging_path(output).exists()
    stamp = json.loads((output / BUILD_STAMP).read_text())
    manifest = json.loads((tmp_path / "datasets.json").read_text())
    entry = manifest[0] if isinstance(manifest, list) else manifest
    assert stamp["units_in"] == 5
    assert stamp["manifest_entry"]["fingerprints"] == entry["fingerprints"]


# --- one bad line never fails a build ---------------------------------------------------------


def deep_object(depth: int) -> str:
    text = '"x"'
    for level in range(depth):
        text = '{"<ans>": "a", "k%d": %s}' % (level, text)
    return text


HOSTILE_LINES = {
    1: "[" * 10_000 + "]" * 10_000,                              # RecursionError in json.loads
    2: deep_object(500),                                         # RecursionError in clean
    3: '{"input": "x", "<ans>": ' + "9" * 5000 + "}",            # ValueError: over Python's int digit limit
    4: deep_object(300),                                         # survives to escape, pack and the report
}
STAGES_THAT_RAISE = {  # trigger word -> (class, method) made to raise on a record carrying the word
    "boomread": ("corpus.pipeline.read.ReadFileLines", "_parse"),
    "boomclean": ("corpus.pipeline.clean.CleanText", "process_record"),
    "boomsplit": ("corpus.pipeline.split.SplitLongDocuments", "process"),
    "boomquality": ("corpus.pipeline.quality.QualityFilter", "process_record"),
    "boomfingerprint": ("corpus.pipeline.fingerprint.ComputeFingerprints", "process"),
    "boomescape": ("corpus.pipeline.escape.EscapeSpecialTokens", "process_record"),
}


def raise_on(word: str, method):
    def patched(self, *args):
        element = args[-2] if method.__name__ == "_parse" else args[0]
        seen = element if isinstance(element, bytes) else element.text.encode()
        if word.encode() in seen:
            raise RuntimeError(f"planted failure {word}")
        return method(self, *args)
    return patched


def test_hostile_lines_and_a_failure_in_every_stage_become_counted_rejects(tmp_path, monkeypatch):
    import importlib

    for word, (path, name) in STAGES_THAT_RAISE.items():
        module, cls = path.rsplit(".", 1)
        owner = getattr(importlib.import_module(module), cls)
        monkeypatch.setattr(owner, name, raise_on(word, getattr(owner, name)))
    inputs = tmp_path / "raw"
    inputs.mkdir()
    hostile = [HOSTILE_LINES[n] for n in sorted(HOSTILE_LINES)]
    (inputs / "h.jsonl").write_text("\n".join(hostile) + "\n", encoding="utf-8")
    planted = [f"{en_doc(i)} {word}" for i, word in enumerate(STAGES_THAT_RAISE)] + [en_doc(99)]
    (inputs / "t.txt").write_text("\n".join(planted) + "\n", encoding="utf-8")
    # one in-process worker: the planted failures are patched into this process only
    result = build_corpus(config_for(inputs, tmp_path / "ds"), ["--direct_num_workers=1"], log=lambda line: None)
    assert result.units_in == len(hostile) + len(planted) == result.written + result.rejected
    import pyarrow.parquet as pq

    rejects = {(row["source_path"], row["source_line"]): row for path in (tmp_path / "ds" / "rejects").iterdir()
               for row in pq.read_table(path).to_pylist()}
    assert rejects["h.jsonl", 1]["reason"] == "broken_json" and "RecursionError" in rejects["h.jsonl", 1]["detail"]
    assert rejects["h.jsonl", 2]["stage"] == "clean" and rejects["h.jsonl", 2]["reason"] == "stage_error"
    assert rejects["h.jsonl", 3]["reason"] == "broken_json" and "digits" in rejects["h.jsonl", 3]["detail"]
    assert ("h.jsonl", 4) not in rejects and result.written == 2  # the 300-deep object and the plain line
    for line, word in enumerate(STAGES_THAT_RAISE, start=1):
        assert rejects["t.txt", line]["reason"] == "stage_error", (word, rejects.get(("t.txt", line)))
        assert f"t.txt:{line}: RuntimeError: planted failure {word}" in rejects["t.txt", line]["detail"]


# --- stale inputs and corrupt checkpoints -----------------------------------------------------


def dataset_text(result) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(result.dataset_path.iterdir()) if p.name != "meta.bin"
                    and not p.name.startswith("."))


def test_input_edited_keeping_size_and_mtime_is_rebuilt_even_without_its_output(tmp_path):
    inputs = small_corpus(tmp_path / "raw", lines=2)
    source = inputs / "txt" / "a.txt"
    config = config_for(inputs, tmp_path / "ds")
    first = build_corpus(config, [], log=lambda line: None)
    stat = source.stat()
    source.write_bytes(source.read_bytes().replace(b"Document 1 begins", b"Document 7 begins"))
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert source.stat().st_size == stat.st_size
    second = build_corpus(config, [], log=lambda line: None)
    assert not second.up_to_date and b"Document 7 begins" in dataset_text(second)
    # with the output deleted, the checkpoint of the edited file must not be served either
    source.write_bytes(source.read_bytes().replace(b"Document 7 begins", b"Document 8 begins"))
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    remove_our_folder(tmp_path / "ds")
    logs: list[str] = []
    third = build_corpus(config, [], log=logs.append)
    assert any("1 to read, 0 resumed" in line for line in logs)
    assert b"Document 8 begins" in dataset_text(third) and first.written == third.written


def test_zero_byte_checkpoint_with_its_marker_is_named_and_redone(tmp_path):
    inputs = small_corpus(tmp_path / "raw", lines=2)
    (inputs / "txt" / "b.txt").write_text(en_doc(50) + "\n", encoding="utf-8")
    config = config_for(inputs, tmp_path / "ds")
    first = build_corpus(config, [], log=lambda line: None)
    expected = dataset_text(first)
    prepared = Path(config.resolved_work_dir) / "prepared"
    (prepared / "txt%2Fa.txt.parquet").write_bytes(b"")
    remove_our_folder(tmp_path / "ds")
    logs: list[str] = []
    again = build_corpus(config, [], log=logs.append)
    assert any("txt/a.txt: checkpoint is corrupt" in line and "a.txt.parquet" in line for line in logs)
    assert any("1 to read, 1 resumed" in line for line in logs)
    assert dataset_text(again) == expected


# --- hostile configs --------------------------------------------------------------------------

YAML_ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))


def test_yaml_alias_bomb_is_refused_at_once(tmp_path):
    from schemas import SchemaError, load_file

    path = tmp_path / "build.yaml"
    path.write_text(YAML_ALIAS_BOMB + "input: [raw]\noutput: out\n", encoding="utf-8")
    assert len(YAML_ALIAS_BOMB) < 1024
    with pytest.raises(SchemaError, match="aliases expand to more than 1,000,000 nodes"):
        load_file(BuildConfig, path)
    path.write_text("a: &a [*a]\n", encoding="utf-8")
    with pytest.raises(SchemaError, match="recursive alias"):
        load_file(BuildConfig, path)


@pytest.mark.parametrize("field, value", [
    ("write", {"block_size": 10**12}), ("near_dedupe", {"num_perm": 10**9}), ("read", {"max_line_bytes": 10**12}),
    ("split", {"max_length": 10**12}), ("weight", float("inf")), ("weight", float("nan")),
    ("incontext_weight", [float("nan")]),
])
def test_build_config_values_past_their_bounds_are_refused(tmp_path, field, value):
    from schemas import SchemaError, validate_data

    data = {"input": ["raw"], "output": "out", "dataset_name": "d", "task_name": "t", field: value}
    with pytest.raises(SchemaError, match=field):
        validate_data(BuildConfig, data, "build.yaml")


# --- runners ----------------------------------------------------------------------------------


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("runner", ["FlinkRunner", "SparkRunner"])
def test_runner_whose_job_server_cannot_be_reached_fails_in_one_line_and_leaves_no_staging(tmp_path, runner):
    inputs = small_corpus(tmp_path / "raw", lines=2)
    output = tmp_path / "ds"
    endpoint = f"localhost:{closed_port()}"
    args = [f"--runner={runner}", f"--job_endpoint={endpoint}", "--job_server_timeout=2"]
    with pytest.raises(BuildError) as failure:
        build_corpus(config_for(inputs, output), args, log=lambda line: None)
    message = str(failure.value)
    # gRPC answers "connection refused" or times out, depending on load: either way one line naming the server
    assert "\n" not in message and f"runner {runner} failed (job server {endpoint})" in message
    assert f"infra/runners/{runner[:-6].lower()}.yaml" in message
    assert not staging_path(output).exists() and not output.exists()


@pytest.mark.parametrize("runner", ["DaskRunner", "apache_beam.runners.dask.dask_runner.DaskRunner"])
def test_dask_runner_is_refused_with_the_reason(tmp_path, runner):
    inputs = small_corpus(tmp_path / "raw", lines=2)
    with pytest.raises(BuildError, match="sends tagged outputs"):
        build_corpus(config_for(inputs, tmp_path / "ds"), [f"--runner={runner}"], log=lambda line: None)
    assert not staging_path(tmp_path / "ds").exists()


@pytest.mark.integration
def test_portable_runner_with_an_embedded_job_server_gives_the_local_runners_bytes(raw_corpus, tmp_path):
    outputs = []
    for name, args in (("local", []), ("portable", ["--runner=PortableRunner", "--job_endpoint=embed",
                                                    "--environment_type=LOOPBACK"])):
        config = BuildConfig(input=[str(raw_corpus)], output=str(tmp_path / name / "ds"), dataset_name="tiny",
                             task_name="test", split={"min_length": 50, "max_length": 1500})
        outputs.append(build_corpus(config, args, log=lambda line: None))
    local, portable = outputs
    assert tree(local.output / "data") == tree(portable.output / "data")
    for folder in ("arrow", "rejects"):
        assert tree(local.output / folder) == tree(portable.output / folder)
    assert not staging_path(portable.output).exists()
