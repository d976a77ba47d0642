"""Integration: a real local Prefect server, `bee flows serve`, and `prefect deployment run`."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from flows.demo import SAMPLE_RAW
from prefect_server import BIN, running_server, start, stop

pytestmark = pytest.mark.integration


def prefect(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "prefect"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def read_artifacts(api_url: str, key: str) -> list[dict]:
    # `prefect artifact inspect` of Prefect 3.8.8 sends a filter its own server refuses (422).
    body = json.dumps({"artifacts": {"key": {"any_": [key]}}}).encode()
    request = urllib.request.Request(f"{api_url}/artifacts/filter", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for_deployments(env: dict, names: list[str], serve: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if serve.poll() is not None:
            raise RuntimeError(f"bee flows serve exited:\n{log.read_text()[-3000:]}")
        if all(prefect(env, "deployment", "inspect", f"{name}/{name}").returncode == 0 for name in names):
            return
        time.sleep(1)
    raise TimeoutError(f"deployments {names} not registered:\n{log.read_text()[-3000:]}")


def test_corpus_build_deployment_runs_through_a_real_server(tmp_path):
    plan = {
        "input": [str(SAMPLE_RAW / "json")],
        "output": str(tmp_path / "out" / "qa"),
        "dataset_name": "qa",
        "task_name": "sample",
        "split": {"min_length": 10, "max_length": 400},
    }
    build_config = tmp_path / "build.yaml"
    build_config.write_text(yaml.safe_dump(plan))
    with running_server(tmp_path) as (api_url, env):
        log = tmp_path / "serve.log"
        serve = start(
            [str(BIN / "bee"), "flows", "serve", "--manifest", str(tmp_path / "out" / "datasets.json"),
             "--vocab", str(tmp_path / "vocab.txt"), "--cron", "15 4 * * *"],
            env, log, cwd=tmp_path,
        )
        try:
            wait_for_deployments(env, ["corpus-build", "retokenize", "pretrain"], serve, log)
            run = prefect(env, "deployment", "run", "corpus-build/corpus-build",
                          "--param", f"build_config={build_config}", "--watch", "--watch-timeout", "300",
                          timeout=360)
            assert run.returncode == 0, run.stdout + run.stderr + log.read_text()[-3000:]
            assert "Completed" in run.stdout

            broken = tmp_path / "broken.yaml"
            broken.write_text(yaml.safe_dump({**plan, "input": [str(tmp_path / "no-such-folder")],
                                              "output": str(tmp_path / "out" / "broken")}))
            failed = prefect(env, "deployment", "run", "corpus-build/corpus-build",
                             "--param", f"build_config={broken}", "--watch", "--watch-timeout", "300",
                             timeout=360)
            assert failed.returncode != 0 and "Failed" in failed.stdout, failed.stdout + failed.stderr
            assert "no-such-folder" in log.read_text()  # the job's error is in the flow run's log
            assert not (tmp_path / "out" / "broken").exists()

            schedule = prefect(env, "deployment", "inspect", "retokenize/retokenize").stdout
            assert "15 4 * * *" in schedule

            (artifact,) = read_artifacts(api_url, "corpus-build-sample-qa")
            assert artifact["type"] == "markdown"
            assert "records in" in artifact["data"] and "Drops by stage and reason" in artifact["data"]
            assert "report.html" in artifact["data"] and "file://" not in artifact["data"]  # the report itself
        finally:
            stop(serve)

    assert (tmp_path / "out" / "qa" / "data" / "meta.bin").exists()
    (entry,) = json.loads((tmp_path / "out" / "datasets.json").read_text())
    assert entry["task_name"] == "sample" and entry["nlines"] > 0 and entry["escaped"] is True
