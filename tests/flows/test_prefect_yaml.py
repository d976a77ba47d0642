"""infra/prefect.yaml declares the same deployments `bee flows serve` registers."""

from importlib import import_module
from pathlib import Path

import yaml

from flows.schedules import DEFAULT_RETOKENIZE_CRON
from flows.serve import build_deployments

REPO_ROOT = Path(__file__).resolve().parents[2]


def _deployments() -> dict[str, dict]:
    config = yaml.safe_load((REPO_ROOT / "infra" / "prefect.yaml").read_text())
    return {deployment["name"]: deployment for deployment in config["deployments"]}


def test_every_entrypoint_is_a_flow_named_like_its_deployment():
    for name, deployment in _deployments().items():
        path, _, attribute = deployment["entrypoint"].partition(":")
        assert (REPO_ROOT / path).exists(), path
        flow = getattr(import_module(path.removesuffix(".py").replace("/", ".")), attribute)
        assert flow.name == name


def test_served_and_declared_deployments_agree():
    served = {deployment.name: deployment for deployment in build_deployments("m.json", "v.txt", "0 3 * * *")}
    declared = _deployments()
    assert set(served) == set(declared)
    assert declared["retokenize"]["schedules"][0]["cron"] == "0 3 * * *"
    assert served["retokenize"].schedules[0].schedule.cron == "0 3 * * *"
    assert DEFAULT_RETOKENIZE_CRON == declared["retokenize"]["schedules"][0]["cron"]  # `bee flows serve`'s default
    assert set(declared["retokenize"]["parameters"]) == {"manifest", "vocab"}
