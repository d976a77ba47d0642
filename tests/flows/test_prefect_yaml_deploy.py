"""Integration: every Prefect command a user types, against a real local server.

`prefect deploy --all --prefect-file infra/prefect.yaml` into a process work pool, a bounded
`prefect worker start --run-once` after each `prefect deployment run` (corpus-build on the
shipped sample plan, retokenize, pretrain, evaluate), then `prefect deployment ls`, `flow-run ls` and
`artifact ls`. Flow runs start in a view of the repository (its entries linked) so the sample
plan's relative outputs land in the test's folder.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flows.demo import DEMO_MAX_DEPTH, sample_run_config
from prefect_server import BIN, running_server

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
NOT_LINKED = {".git", ".venv", "sample-output", "demo-output", "runs"}
FLOW_RUN_ID = re.compile(r"UUID:\s*([0-9a-f-]{36})")


def repository_view(folder: Path) -> Path:
    """`folder/repo`, whose top-level entries link to the repository's."""
    view = folder / "repo"
    view.mkdir()
    for entry in REPO_ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (view / entry.name).symlink_to(entry)
    return view


def prefect(env: dict, cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**env, "COLUMNS": "400"}  # tables whole, not cut to 80 columns
    done = subprocess.run([str(BIN / "prefect"), "--no-prompt", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def run_deployment(env: dict, cwd: Path, name: str, *params: str) -> str:
    """`prefect deployment run NAME --param ...`, then one bounded worker poll that runs it.
    Returns the flow run's id once it has completed."""
    args = [arg for param in params for arg in ("--param", param)]
    started = prefect(env, cwd, "deployment", "run", name, *args)
    flow_run_id = FLOW_RUN_ID.search(started.stdout).group(1)
    worker = prefect(env, cwd, "worker", "start", "--pool", "bee-process", "--run-once", timeout=900)
    inspect = prefect(env, cwd, "flow-run", "inspect", flow_run_id)
    assert "COMPLETED" in inspect.stdout, f"{name}:\n{inspect.stdout}\n{worker.stdout[-4000:]}\n{worker.stderr[-4000:]}"
    return flow_run_id


def test_prefect_yaml_deploys_and_a_process_worker_runs_every_deployment(tmp_path):
    view = repository_view(tmp_path)
    outputs = view / "sample-output"
    with running_server(tmp_path) as (api_url, env):
        env["BEE_REPO_ROOT"] = str(view)
        # The commands at the top of infra/prefect.yaml, as a user types them.
        prefect(env, view, "work-pool", "create", "bee-process", "--type", "process")
        prefect(env, view, "deploy", "--all", "--prefect-file", "infra/prefect.yaml")
        listed = prefect(env, view, "deployment", "ls").stdout
        assert all(f"{name}/{name}" in listed for name in ("corpus-build", "retokenize", "pretrain", "evaluate")), listed

        run_deployment(env, view, "corpus-build/corpus-build", "build_config=corpus/sample/build.yaml")
        manifest = outputs / "datasets.json"
        assert {entry["dataset_name"] for entry in json.loads(manifest.read_text())} == {"sample_text", "sample_qa"}

        vocab = outputs / "vocab.txt"
        subprocess.run([sys.executable, "-m", "flows.cli", "vocab", "build",
                        "--corpus", str(outputs / "datasets" / "sample-text" / "data"),
                        "--corpus", str(outputs / "datasets" / "sample-qa" / "data"),
                        "--size", "4096", "--min-char-count", "1", "-o", str(vocab)],
                       cwd=view, env=env, check=True, capture_output=True, timeout=300)
        run_deployment(env, view, "retokenize/retokenize", f"manifest={manifest}", f"vocab={vocab}",
                       f"max_depth={DEMO_MAX_DEPTH}")

        run_config = outputs / "run.yaml"
        run_config.write_text(yaml.safe_dump(sample_run_config(outputs, manifest, vocab, steps=3)))
        run_deployment(env, view, "pretrain/pretrain", f"run_config={run_config}", "num_gpus=1", "cpu=true")
        qa_data = outputs / "datasets" / "sample-qa" / "data"
        run_deployment(env, view, "evaluate/evaluate", f"checkpoint={outputs / 'checkpoints'}", f"data={json.dumps([str(qa_data)])}",
                       f"vocab={vocab}", "limit=3", "beam_size=2", f"max_depth={DEMO_MAX_DEPTH}")

        flow_runs = prefect(env, view, "flow-run", "ls").stdout
        assert flow_runs.count("COMPLETED") == 4, flow_runs
        artifacts = prefect(env, view, "artifact", "ls").stdout
        for key in ("corpus-build-lm-sample-text", "corpus-build-qa-sample-qa", "retokenize", "pretrain-demo", "evaluate"):
            assert key in artifacts, artifacts
        pretrain_artifact = prefect(env, view, "artifact", "inspect", "pretrain-demo").stdout
        assert "tokens/s" in pretrain_artifact and "checkpoint" in pretrain_artifact
        corpus_artifact = prefect(env, view, "artifact", "inspect", "corpus-build-lm-sample-text").stdout
        assert "Drops by stage and reason" in corpus_artifact and "file://" not in corpus_artifact
    assert (outputs / "checkpoints").is_dir()
