"""`build_corpus` to an `s3://` output, against a real S3-compatible server (moto's server mode)
started by the test on loopback: same dataset bytes as a local build, a rebuild is up to date,
an interrupted publish is finished by the next build, and the advisory lock object refuses a
second writer. The two whole builds are `integration` (about a minute each here); the
object-level publish, recovery, refusal and lock tests run by default."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from corpus.pipeline import remote_output
from corpus.pipeline.build import BuildError, build_corpus
from corpus.pipeline.output_folder import BUILD_STAMP, BUILDING, TOOL, UnsafeOutput
from tests.corpus.pipeline.test_build_faults import config_for, small_corpus, tree

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

ROOT = Path(__file__).resolve().parents[3]
BUCKET = "corpus"
KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on loopback with an empty bucket; yields (boto3 client, Beam flags)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    flags = [f"--s3_endpoint_url={endpoint}", "--s3_access_key_id=testing", "--s3_secret_access_key=testing",
             "--s3_region_name=us-east-1"]
    yield client, flags
    server.stop()


def objects(client, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix/`, by name relative to it."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
        for item in page.get("Contents", []):
            found[item["Key"][len(prefix) + 1:]] = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
    return found


@pytest.mark.integration  # ~60 s on 2 busy cores: Beam's S3 filesystem costs ~0.15 s per object (RESULTS.md)
def test_s3_build_matches_a_local_build_and_a_rebuild_is_up_to_date(tmp_path, s3):
    client, flags = s3
    inputs = small_corpus(tmp_path / "raw")
    local = build_corpus(config_for(inputs, tmp_path / "ds"), [], log=lambda line: None)
    remote = build_corpus(config_for(inputs, f"s3://{BUCKET}/same/ds"), flags, log=lambda line: None)
    assert remote.output == f"s3://{BUCKET}/same/ds" and not remote.up_to_date
    assert (remote.written, remote.rejected) == (local.written, local.rejected)
    published = objects(client, "same/ds")
    local_files = tree(tmp_path / "ds")
    data = {name: body for name, body in local_files.items() if name.startswith("data/") and "/." not in name}
    assert data and {name: published[name] for name in data} == data  # the binary dataset, byte for byte
    shards = {name for name in local_files if name.startswith("arrow/")}
    assert shards and {name: published[name] for name in shards} == {name: local_files[name] for name in shards}
    assert json.loads(published[BUILD_STAMP])["build_hash"] == json.loads(local_files[BUILD_STAMP])["build_hash"]
    assert not objects(client, "same/ds.building") and not objects(client, "same/ds.lock")
    manifest = json.loads(client.get_object(Bucket=BUCKET, Key="same/datasets.json")["Body"].read())
    assert manifest[0]["path"] == "ds/data"

    again = build_corpus(config_for(inputs, f"s3://{BUCKET}/same/ds"), flags, log=lambda line: None)
    assert again.up_to_date and again.written == local.written
    assert objects(client, "same/ds") == published


def test_s3_output_holding_objects_no_build_wrote_is_refused(tmp_path, s3):
    client, flags = s3
    client.put_object(Bucket=BUCKET, Key="foreign/ds/thesis.tex", Body=b"months of work\n")
    with pytest.raises(UnsafeOutput, match="holds objects that no corpus build wrote"):
        build_corpus(config_for(small_corpus(tmp_path / "raw"), f"s3://{BUCKET}/foreign/ds"), flags,
                     log=lambda line: None)
    assert objects(client, "foreign/ds") == {"thesis.tex": b"months of work\n"}


def test_s3_lock_object_of_a_live_build_refuses_a_second_writer(tmp_path, s3):
    client, flags = s3
    holder = {"host": socket.gethostname(), "pid": os.getppid()}  # a live process on this host
    client.put_object(Bucket=BUCKET, Key="locked/ds.lock", Body=json.dumps(holder).encode())
    with pytest.raises(BuildError, match=r"another build is writing s3://corpus/locked/ds .*delete s3://corpus/locked/ds.lock"):
        build_corpus(config_for(small_corpus(tmp_path / "raw"), f"s3://{BUCKET}/locked/ds"), flags,
                     log=lambda line: None)


@pytest.mark.integration
def test_s3_build_killed_in_the_publish_is_finished_by_the_next_build(tmp_path, s3):
    client, flags = s3
    inputs = small_corpus(tmp_path / "raw")
    output = f"s3://{BUCKET}/killed/ds"
    env = {**os.environ, **KEYS, "PYTHONPATH": str(ROOT), "BEE_FAULT_KILL_AT": "swap_between_renames"}
    killed = subprocess.run([sys.executable, "-m", "corpus.pipeline.cli", "--input", str(inputs), "--output", output,
                             "--dataset-name", "tiny", "--task-name", "test", *flags],
                            env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert BUILD_STAMP in objects(client, "killed/ds.building")  # complete staging, output not yet published
    assert "ds.lock" in {key.rsplit("/", 1)[-1] for key in objects(client, "killed")}  # left by the dead process
    lines: list[str] = []
    result = build_corpus(config_for(inputs, output), flags, log=lines.append)
    assert any("finished the publish an interrupted build had started" in line for line in lines)
    assert result.up_to_date  # the recovered build is the one this config asks for
    assert not objects(client, "killed/ds.building")
    local = build_corpus(config_for(inputs, tmp_path / "ds"), [], log=lambda line: None)
    data = {name: body for name, body in tree(tmp_path / "ds").items() if name.startswith("data/") and "/." not in name}
    assert {name: objects(client, "killed/ds")[name] for name in data} == data
    assert local.written == result.written


# --- publish and recovery, object by object (no Beam job) -------------------------------------


def fake_build(client, prefix: str, files: dict[str, bytes], state: str | None = None) -> None:
    for name, body in files.items():
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/{name}", Body=body)
    stamp = {"tool": TOOL, **({"state": state} if state else {"build_hash": prefix})}
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/{BUILD_STAMP}", Body=json.dumps(stamp).encode())


def test_publish_replaces_every_object_and_the_output_is_unpublished_until_the_stamp(s3):
    client, flags = s3
    FileSystems.set_options(PipelineOptions(flags))
    fake_build(client, "pub/ds", {"data/meta.bin": b"old", "data/gone.bin": b"old only"})
    fake_build(client, "pub/ds.building", {"data/meta.bin": b"new", "arrow/a.parquet": b"shard"})
    seen = {}

    def fault(point):
        seen[point] = remote_output.is_complete(f"s3://{BUCKET}/pub/ds")

    remote_output.publish(f"s3://{BUCKET}/pub/ds.building", f"s3://{BUCKET}/pub/ds", fault=fault)
    assert seen == {"swap_between_renames": False, "swap_before_cleanup": True}
    published = objects(client, "pub/ds")
    assert {name: body for name, body in published.items() if name != BUILD_STAMP} == {
        "data/meta.bin": b"new", "arrow/a.parquet": b"shard"}
    assert json.loads(published[BUILD_STAMP])["build_hash"] == "pub/ds.building"
    assert not objects(client, "pub/ds.building")


def test_recover_deletes_an_unfinished_staging_beside_a_published_output(s3):
    client, flags = s3
    FileSystems.set_options(PipelineOptions(flags))
    fake_build(client, "rec/ds", {"data/meta.bin": b"kept"})
    fake_build(client, "rec/ds.building", {"arrow/a.parquet": b"half"}, state=BUILDING)
    remote_output.recover(f"s3://{BUCKET}/rec/ds", log=lambda line: None)
    assert not objects(client, "rec/ds.building")
    assert objects(client, "rec/ds")["data/meta.bin"] == b"kept"


# --- readers of a remote build: the flow's verify and summary, `bee corpus rejects` / `stats` ---


def upload(client, local: Path, prefix: str) -> str:
    """Publish the local build `local` as the objects of a remote one (what `publish` leaves:
    the same files byte for byte, the stamp last); returns its URL."""
    for path in sorted(p for p in local.rglob("*") if p.is_file() and not p.name.startswith(".") and p.name != BUILD_STAMP):
        client.put_object(Bucket=BUCKET, Key=f"{prefix}/{path.relative_to(local).as_posix()}", Body=path.read_bytes())
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/{BUILD_STAMP}", Body=(local / BUILD_STAMP).read_bytes())
    return f"s3://{BUCKET}/{prefix}"


@pytest.fixture(scope="module")
def remote_built(built, s3):
    """The session's local build (tests/corpus/pipeline/conftest.py), published on the S3 server."""
    client, flags = s3
    _, local = built
    return local, upload(client, local.output, "readers/ds")


def as_remote(local, url: str):
    from dataclasses import replace

    return replace(local, output=url, dataset_path=f"{url}/data", manifest_path=f"s3://{BUCKET}/readers/datasets.json")


def test_flow_verifies_a_remote_dataset_block_by_block(remote_built, s3):
    from corpus.dataset import verify_dataset
    from flows.corpus_build import verify

    _, flags = s3
    local, url = remote_built
    assert verify.fn(as_remote(local, url), flags) == local.nlines == verify_dataset(local.dataset_path).nlines
    remote_report = verify_dataset(f"{url}/data")
    assert [(c.file_name, c.nblocks, c.nlines, c.nbytes) for c in remote_report.files] == [
        (c.file_name, c.nblocks, c.nlines, c.nbytes) for c in verify_dataset(local.dataset_path).files]


def test_verify_of_a_remote_dataset_names_a_corrupt_block(remote_built, s3):
    from corpus.dataset import verify_dataset
    from corpus.dataset.meta import DatasetCorrupt, read_meta

    client, flags = s3
    local, _ = remote_built
    url = upload(client, local.output, "corrupt/ds")
    info = read_meta(local.dataset_path)[0]
    key = f"corrupt/ds/data/{info.file_name}"
    body = bytearray(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    body[0] = 0x7E  # the first record's magic byte
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))
    remote_output.use_filesystem_options(flags)
    with pytest.raises(DatasetCorrupt, match=rf"{url}/data/{info.file_name}: block 0 .*bad magic 0x7e at offset 0"):
        verify_dataset(f"{url}/data")
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(body[:info.block_size // 2]))
    with pytest.raises(DatasetCorrupt, match=rf"{info.file_name}: truncated: .* the file has {info.block_size // 2} bytes"):
        verify_dataset(f"{url}/data")
    client.delete_object(Bucket=BUCKET, Key=key)
    with pytest.raises(DatasetCorrupt, match="listed in meta.bin but missing"):
        verify_dataset(f"{url}/data")


def test_flow_summary_of_a_remote_build_carries_its_report(remote_built, built):
    from flows.corpus_build import build_summary_markdown

    config, local = built
    local_md = build_summary_markdown(config, local)
    remote_md = build_summary_markdown(config, as_remote(local, remote_built[1]))
    assert "## Files" in remote_md and f"`{remote_built[1]}/report.html`" in remote_md
    assert remote_md.split("## Files")[0] == local_md.split("## Files")[0]  # the report itself, read from S3


def test_rejects_and_stats_of_a_remote_build_are_the_local_ones(remote_built, s3):
    from corpus.pipeline.shard_stats import rejects_summary, shard_stats

    _, flags = s3
    local, url = remote_built
    for sample in (0, 2):
        here, there = rejects_summary(local.output, sample=sample), rejects_summary(url, sample=sample, pipeline_args=flags)
        assert there.total == here.total == local.rejected
        assert there.counts.equals(here.counts) and there.examples.equals(here.examples)
    here, there = shard_stats(local.output), shard_stats(url, flags)
    assert there.records == here.records == local.written
    assert there.by_kind.equals(here.by_kind) and there.lengths.equals(here.lengths) and there.scores.equals(here.scores)


def test_rejects_and_stats_commands_take_an_s3_output(remote_built, s3, monkeypatch):
    from typer.testing import CliRunner

    from flows.cli import app

    _, flags = s3
    local, url = remote_built
    endpoint = next(flag.split("=", 1)[1] for flag in flags if flag.startswith("--s3_endpoint_url="))
    env = {**KEYS, "COLUMNS": "200"}
    out = CliRunner().invoke(app, ["corpus", "stats", url, "--s3-endpoint-url", endpoint], env=env)
    assert out.exit_code == 0, out.output
    assert f"{local.written} kept records in {url}" in out.output
    out = CliRunner().invoke(app, ["corpus", "rejects", url, "--reason", "invalid_utf8", "--s3-endpoint-url", endpoint],
                             env=env)
    assert out.exit_code == 0, out.output
    assert "1 rejected records" in out.output and "invalid_utf8" in out.output


def test_readers_refuse_an_unpublished_remote_output_and_hdfs(s3):
    from typer.testing import CliRunner

    from flows.cli import app

    client, flags = s3
    endpoint = next(flag.split("=", 1)[1] for flag in flags if flag.startswith("--s3_endpoint_url="))
    fake_build(client, "half/ds", {"arrow/a.parquet": b"not yet"}, state=BUILDING)  # a publish under way
    out = CliRunner().invoke(app, ["corpus", "stats", f"s3://{BUCKET}/half/ds", "--s3-endpoint-url", endpoint],
                             env={**KEYS, "COLUMNS": "200"})
    assert out.exit_code == 1 and "no complete build here" in out.output
    out = CliRunner().invoke(app, ["corpus", "rejects", "hdfs://namenode/corpus/ds"], env={"COLUMNS": "200"})
    assert out.exit_code == 1 and "polars cannot read hdfs://" in out.output


@pytest.mark.integration  # a whole s3:// build (~60 s here) plus Prefect's ephemeral API
def test_corpus_build_flow_builds_verifies_and_reports_an_s3_output(tmp_path, s3, monkeypatch):
    from prefect.artifacts import Artifact
    from prefect.testing.utilities import prefect_test_harness

    from flows.corpus_build import _artifact_key, corpus_build
    from flows.demo import write_yaml

    client, flags = s3
    for name, value in KEYS.items():  # what a deployment's worker would have in its environment
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # its first write races the harness's DB
    config = config_for(small_corpus(tmp_path / "raw"), f"s3://{BUCKET}/flow/ds")
    plan = write_yaml(tmp_path / "build.yaml", {"datasets": [config.model_dump(mode="json", exclude_defaults=True)]})
    with prefect_test_harness():
        [summary] = corpus_build(build_config=str(plan), runner_options=flags)
        artifact = Artifact.get(_artifact_key(config))
    assert summary["dataset_path"] == f"s3://{BUCKET}/flow/ds/data" and summary["written"] > 0
    assert "data/meta.bin" in objects(client, "flow/ds")
    assert artifact is not None and "## Files" in artifact.data and f"s3://{BUCKET}/flow/ds/report.html" in artifact.data
    assert "# Corpus build report: test.tiny" in artifact.data  # the report itself, read from S3
    assert "## Drops by stage and reason" in artifact.data
