"""`bee flows serve`: serve the corpus-build, retokenize, pretrain and evaluate deployments from this process.

The alternative to `prefect deploy --prefect-file infra/prefect.yaml` + a process worker: one
long-running process that registers the deployments with the Prefect server named by
PREFECT_API_URL and runs their flow runs as subprocesses.
"""

from __future__ import annotations

from prefect import serve

from flows.schedules import DEFAULT_RETOKENIZE_CRON
from flows.corpus_build import corpus_build
from flows.evaluate import evaluate
from flows.pretrain import pretrain
from flows.retokenize import retokenize



def build_deployments(manifest: str, vocab: str, cron: str = DEFAULT_RETOKENIZE_CRON) -> list:
    """The four deployments; `manifest` and `vocab` are the scheduled re-tokenization's parameters."""
    return [
        corpus_build.to_deployment(
            name="corpus-build",
            description="Build the datasets of a build config: --param build_config=PATH [runner_profile=...]",
            tags=["corpus"],
        ),
        retokenize.to_deployment(
            name="retokenize",
            cron=cron,
            parameters={"manifest": manifest, "vocab": vocab},
            description="Refresh stale token shards of a manifest and its token statistics.",
            tags=["tokenization"],
        ),
        pretrain.to_deployment(
            name="pretrain",
            description="Validate a run config and start the deepspeed launcher: --param run_config=PATH",
            tags=["trainer"],
        ),
        evaluate.to_deployment(
            name="evaluate",
            description="Score a checkpoint: --param checkpoint=PATH --param 'data=[\"eval.jsonl\"]' --param vocab=PATH",
            tags=["trainer"],
        ),
    ]


def serve_deployments(manifest: str, vocab: str, cron: str = DEFAULT_RETOKENIZE_CRON) -> None:
    """Register the deployments and run their flow runs until interrupted."""
    serve(*build_deployments(manifest, vocab, cron))
