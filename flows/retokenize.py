"""Prefect flow `retokenize`: bring a manifest's token shards up to date with a vocabulary.

Thin orchestration over `tokenization.retokenize.retokenize_manifest` (what `bee tokenize`
calls): only stale shards are redone; the artifact lists what was redone and the new token
statistics. Deployed on a cron schedule (infra/prefect.yaml, `bee flows serve`).
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from tokenization.retokenize import RetokenizeReport, retokenize_manifest
from tokenization.token_shards import DEFAULT_MAX_DEPTH


@task(name="retokenize-manifest", retries=2, retry_delay_seconds=10)
def refresh_token_shards(manifest: str, vocab: str, workers: int, max_depth: int) -> RetokenizeReport:
    return retokenize_manifest(manifest, vocab, max_depth=max_depth, workers=workers)


def retokenize_summary_markdown(report: RetokenizeReport) -> str:
    lines = [
        "# retokenize",
        "",
        f"manifest `{report.manifest}` · vocab `{report.vocab_path}` (sha256 `{report.vocab_fingerprint[:12]}`)"
        f" · {report.shards_redone} shards redone · {report.ntokens} tokens · {report.seconds:.1f} s",
        "",
        "| dataset | redone | fresh | removed | tokens | unk rate | ext rate | p50 / p90 / p99 length |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for dataset in report.datasets:
        stats = dataset.stats
        lines.append(
            f"| {dataset.identity} | {len(dataset.redone)} | {len(dataset.fresh)} | {len(dataset.removed)} "
            f"| {stats.ntokens} | {stats.unk_rate:.4%} | {stats.ext_record_rate:.2%} "
            f"| {stats.length.p50:g} / {stats.length.p90:g} / {stats.length.p99:g} |"
        )
    for identity, error in report.failed.items():
        lines.append(f"| {identity} | **failed**: {error} | | | | | | |")
    return "\n".join(lines) + "\n"


@flow(name="retokenize", log_prints=True)
def retokenize(manifest: str, vocab: str, workers: int = 1, max_depth: int = DEFAULT_MAX_DEPTH) -> dict:
    """Re-tokenize the stale shards of every dataset in `manifest` with `vocab`, for training
    runs with this `max_depth` (their `data.max_depth`: shards of another depth are not used).

    Fails (after writing the artifact) when any dataset could not be tokenized; the datasets
    that succeeded keep their refreshed shards and statistics.
    """
    logger = get_run_logger()
    report = refresh_token_shards(manifest, vocab, workers, max_depth)
    create_markdown_artifact(markdown=retokenize_summary_markdown(report), key="retokenize",
                             description=f"re-tokenization of {manifest}")
    logger.info("%d shards redone, %d tokens", report.shards_redone, report.ntokens)
    if not report.ok:
        raise RuntimeError("datasets failed to tokenize: " + "; ".join(f"{k}: {v}" for k, v in report.failed.items()))
    return {"shards_redone": report.shards_redone, "ntokens": report.ntokens,
            "datasets": [d.identity for d in report.datasets]}
