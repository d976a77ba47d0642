"""Prefect flow `evaluate`: score a checkpoint on evaluation data (`bee eval`'s job, in a flow run).

Thin orchestration over `trainer.eval_cli.evaluate_checkpoint` (what `bee eval` calls): accuracy
by option perplexity and by generation for option answers, exact match and character F1 for
free answers, per task; the table goes into the run's artifact, the numbers are the return value.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact


@flow(name="evaluate", log_prints=True)
def evaluate(checkpoint: str, data: list[str], vocab: str, model: str | None = None, delta: str | None = None,
             limit: int | None = None, score: str = "text", generate: bool = True, beam_size: int = 3,
             max_depth: int = 16, device: str = "cpu") -> dict:
    """Evaluate `checkpoint` (any kind `load_model` reads) on `data` (JSONL files, dataset folders or
    manifests, e.g. a run's eval_manifest) with the vocabulary `vocab`; `model` is the model config (a preset
    or a file) when none lies beside the checkpoint (`model_config` is a name pydantic reserves)."""
    from trainer.eval_cli import evaluate_checkpoint

    logger = get_run_logger()
    report = evaluate_checkpoint(checkpoint, data, vocab, model_config=model, delta=delta, limit=limit,
                                 score=score, generate=generate, beam_size=beam_size, max_depth=max_depth,
                                 device=device)  # fmt: skip
    result = report.to_json()
    markdown = f"# evaluate `{checkpoint}`\n\n{result['samples']} samples in {result['seconds']:.1f} s\n\n" + report.markdown()
    create_markdown_artifact(markdown=markdown, key="evaluate", description=f"evaluation of {checkpoint}")
    logger.info("%d samples evaluated", result["samples"])
    return {"tasks": result["tasks"], "samples": result["samples"], "seconds": result["seconds"]}
