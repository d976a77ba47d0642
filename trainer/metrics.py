"""Training metrics: CPM-Bee's loss and per-task loss, throughput, and where they are written.

Loss is CPM-Bee's: cross entropy over every logit column (vocabulary and the batch's ext
table) on `target`, positions at -100 ignored, averaged over the micro-batch's predicted
tokens; the logged loss is the mean over ranks (BMTrain's `sum_loss`). Per-task loss is
CPM-Bee's too: each rank averages the tokens of each task it saw, and a task's logged loss
is the mean of those averages over the ranks that saw it.

Evaluation sums over ranks instead (`gather_totals`): token-weighted eval loss and the
per-task counts of task evaluation (trainer/task_eval.py).

`MetricsLog` (rank 0) appends one JSON object per step to `<log_dir>/<run>.metrics.jsonl`,
mirrors scalars to TensorBoard when the `tensorboard` package is installed, and prints a
progress line.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from schemas import RunConfig
from trainer.packing import IGNORE_INDEX

def token_losses(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position cross entropy in float32 and the mask of predicted positions.

    Takes logits (B, L, V + E) and target (B, L) with IGNORE_INDEX where nothing is predicted.
    Returns (loss (B, L), 0 where ignored; predicted (B, L) bool).
    """
    flat = logits.reshape(-1, logits.size(-1)).float()
    losses = F.cross_entropy(flat, target.reshape(-1).long(), ignore_index=IGNORE_INDEX, reduction="none")
    return losses.view(target.shape), target != IGNORE_INDEX


def mean_loss(losses: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """Mean over predicted positions; a batch that predicts nothing gives 0 with a zero gradient."""
    count = predicted.sum()
    return losses.sum() / count.clamp(min=1)


@dataclass
class TaskLossSums:
    """Per-task loss sums and predicted-token counts of one rank over a step's micro-batches."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @torch.no_grad()
    def add(self, losses: torch.Tensor, predicted: torch.Tensor, task_ids: torch.Tensor, task_names: Sequence[str]) -> None:
        """Add one micro-batch: losses/predicted from `token_losses`, task_ids (B, L) into task_names."""
        ids = task_ids[predicted].long()
        sums = torch.bincount(ids, weights=losses[predicted].double(), minlength=len(task_names)).tolist()
        counts = torch.bincount(ids, minlength=len(task_names)).tolist()
        for name, total, count in zip(task_names, sums, counts):
            if count:
                self.sums[name] = self.sums.get(name, 0.0) + total
                self.counts[name] = self.counts.get(name, 0) + count

    def means(self) -> dict[str, float]:
        """This rank's mean loss per task it saw."""
        return {name: self.sums[name] / self.counts[name] for name in self.sums}

    def totals(self) -> dict[str, list[float]]:
        """`{task: [loss sum, predicted tokens]}`, for `gather_totals`."""
        return {name: [self.sums[name], float(self.counts[name])] for name in self.sums}


def average_over_ranks(per_rank: Sequence[dict[str, float]]) -> dict[str, float]:
    """CPM-Bee's aggregation: a task's loss is the mean of the ranks' means, over ranks that saw it.
    Returns the tasks sorted by name."""
    gathered: dict[str, list[float]] = {}
    for means in per_rank:
        for name, value in means.items():
            gathered.setdefault(name, []).append(value)
    return {name: sum(values) / len(values) for name, values in sorted(gathered.items())}


def sum_over_ranks(per_rank: Sequence[Mapping[str, Sequence[float]]]) -> dict[str, list[float]]:
    """Each task's totals summed element-wise over the ranks that have the task (a rank that
    saw none of a task adds nothing). Returns the tasks sorted by name."""
    summed: dict[str, list[float]] = {}
    for totals in per_rank:
        for name, values in totals.items():
            acc = summed.setdefault(name, [0.0] * len(values))
            if len(acc) != len(values):
                raise ValueError(f"task {name!r}: ranks sent {len(acc)} and {len(values)} totals")
            for i, value in enumerate(values):
                acc[i] += value
    return dict(sorted(summed.items()))


def gather_totals(totals: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """`sum_over_ranks` of every rank's `totals` (every rank gets the result); this rank's own
    totals when no process group is up. A collective: every rank must call it."""
    if not dist.is_initialized():
        return sum_over_ranks([totals])
    per_rank: list[Mapping[str, Sequence[float]]] = [{} for _ in range(dist.get_world_size())]
    dist.all_gather_object(per_rank, {name: list(values) for name, values in totals.items()})
    return sum_over_ranks(per_rank)


@dataclass
class StepRecord:
    """What one optimizer step logs."""

    step: int
    loss: float
    task_loss: dict[str, float]
    lr: float
    loss_scale: float
    grad_norm: float
    applied: bool  # False: the optimizer step was skipped (overflow / non-finite)
    tokens: int  # non-padding tokens of the step, all ranks
    step_seconds: float
    data_wait_seconds: float  # time rank 0 waited for batches during the step
    samples_seen: int = 0  # samples read by the training loaders since the run began, all ranks (epochs count these)
    time: float = field(default_factory=time.time)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.step_seconds if self.step_seconds > 0 else 0.0

    @property
    def data_wait_fraction(self) -> float:
        return self.data_wait_seconds / self.step_seconds if self.step_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record.update(kind="train", tokens_per_second=self.tokens_per_second, data_wait_fraction=self.data_wait_fraction)
        return record

    def progress_line(self, max_steps: int | str) -> str:
        """CPM-Bee-style line: `| step 3/100 | loss 7.1234 | lr ... | scale ... | grad_norm ... | ...`."""
        line = (
            f"| step {self.step}/{max_steps} | loss {self.loss:.4f} | lr {self.lr:.4e} | scale {self.loss_scale:g} "
            f"| grad_norm {self.grad_norm:.4f} | tok/s {self.tokens_per_second:,.0f} "
            f"| data wait {100 * self.data_wait_fraction:.1f}% | time {self.step_seconds:.3f}s"
        )
        if not self.applied:
            line += " | step skipped"
        if self.task_loss:
            line += "\n| " + " | ".join(f"{name} loss: {value:.4f}" for name, value in self.task_loss.items())
        return line


@dataclass
class EvalRecord:
    """What one evaluation logs: held-out loss and, with task evaluation, per-task scores."""

    step: int
    loss: float  # token-weighted, all ranks
    task_loss: dict[str, float]
    tasks: dict[str, dict[str, Any]]  # task -> trainer.evaluation.TaskScore.as_dict(); empty without task evaluation
    overall: dict[str, float]  # accuracy / generation_accuracy / char_f1 pooled over every task (those scored)
    watch: str  # what early stop watches (eval.watch)
    value: float  # its value now
    best: float | None
    evals_without_improvement: int
    task_seconds: float = 0.0  # time task evaluation took
    time: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "eval", **asdict(self)}

    def scalars(self) -> dict[str, float]:
        """TensorBoard tag -> value (None scores left out)."""
        scalars = {"Loss/eval": self.loss} | {f"Loss/eval/{name}": value for name, value in self.task_loss.items()}
        names = {"accuracy_perplexity": "Accuracy/eval/{}/perplexity", "accuracy_generation": "Accuracy/eval/{}/generation",
                 "exact_match": "ExactMatch/eval/{}", "char_f1": "CharF1/eval/{}"}  # fmt: skip
        for task, scores in self.tasks.items():
            scalars |= {tag.format(task): scores[key] for key, tag in names.items() if scores.get(key) is not None}
        scalars |= {f"Eval/{key}": value for key, value in self.overall.items()}
        return scalars

    def progress_line(self) -> str:
        """`| eval at step 6 | loss 5.1234 | accuracy 0.2500 | best ... | evals without improvement 0`
        plus one line of scores per evaluated task."""
        best = "—" if self.best is None else f"{self.best:.4f}"
        line = (f"| eval at step {self.step} | loss {self.loss:.4f}"
                + "".join(f" | {key} {value:.4f}" for key, value in self.overall.items())
                + f" | best {self.watch} {best} | evals without improvement {self.evals_without_improvement}")  # fmt: skip
        for task, scores in self.tasks.items():
            parts = [f"{label} {100 * scores[key]:.2f}%" for key, label in
                     (("accuracy_perplexity", "acc (option ppl)"), ("accuracy_generation", "acc (generation)"),
                      ("exact_match", "exact match"), ("char_f1", "char F1")) if scores.get(key) is not None]  # fmt: skip
            line += f"\n| {task}: {scores['samples']} samples" + "".join(f" | {part}" for part in parts)
        if self.tasks:
            line += f"\n| task evaluation took {self.task_seconds:.1f}s"
        return line


def run_log_dir(run: RunConfig) -> Path:
    """Where a run logs: its `log_dir`, else `<checkpoint dir>/logs`."""
    return Path(run.log_dir or Path(run.checkpoint.dir) / "logs")


def metrics_path(log_dir: str | Path, run_name: str) -> Path:
    """The run's metrics file, one JSON object a line."""
    return Path(log_dir) / f"{run_name}.metrics.jsonl"


class MetricsLog:
    """Rank 0's metrics sinks: JSONL file, TensorBoard (if installed), progress lines on stdout."""

    def __init__(self, log_dir: str | Path, run_name: str, max_steps: int | str, log_interval: int = 1) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.path = metrics_path(self.log_dir, run_name)
        self.max_steps = max_steps
        self.log_interval = log_interval
        self._file = open(self.path, "a", encoding="utf-8")
        self._tensorboard = _tensorboard_writer(self.log_dir / "tensorboard")

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False, allow_nan=True) + "\n")
        self._file.flush()

    def train_step(self, record: StepRecord) -> None:
        self._write(record.to_json())
        if self._tensorboard is not None:
            scalars = {
                "Loss/train": record.loss, "Optimizer/lr": record.lr, "Optimizer/scale": record.loss_scale,
                "Optimizer/grad_norm": record.grad_norm, "Speed/tokens_per_second": record.tokens_per_second,
                "Speed/data_wait_fraction": record.data_wait_fraction,
            } | {f"Loss/train/{name}": value for name, value in record.task_loss.items()}  # fmt: skip
            for tag, value in scalars.items():
                if math.isfinite(value):
                    self._tensorboard.add_scalar(tag, value, record.step)
        if record.step % self.log_interval == 0 or record.step == self.max_steps or not record.applied:
            print(record.progress_line(self.max_steps), flush=True)

    def eval_result(self, record: EvalRecord) -> None:
        """An evaluation: an `eval` record in the JSONL log, TensorBoard scalars (`Loss/eval[/task]`,
        `Accuracy/eval/<task>/perplexity|generation`, `ExactMatch/eval/<task>`, `CharF1/eval/<task>`,
        `Eval/<watched>`) and a progress line per task."""
        self._write(record.to_json())
        if self._tensorboard is not None:
            for tag, value in record.scalars().items():
                if math.isfinite(value):
                    self._tensorboard.add_scalar(tag, value, record.step)
        print(record.progress_line(), flush=True)

    def parameter_stats(self, step: int, stats: dict[str, dict[str, float]], seconds: float) -> None:
        """`inspect_iters`: per-group weight/gradient mean, std and max (trainer.param_stats), as an
        `inspect` record and TensorBoard scalars `Inspect/<group>/<stat>`; `seconds` is their cost."""
        self._write({"kind": "inspect", "step": step, "seconds": seconds, "groups": stats, "time": time.time()})
        if self._tensorboard is not None:
            for group, values in stats.items():
                for stat, value in values.items():
                    if math.isfinite(value):
                        self._tensorboard.add_scalar(f"Inspect/{group}/{stat}", value, step)
        print(f"| inspect at step {step}: {len(stats)} parameter groups in {seconds:.3f}s", flush=True)

    def event(self, kind: str, step: int, **fields: Any) -> None:
        """A one-off record (checkpoint saved, resumed, early stop) in the JSONL log."""
        self._write({"kind": kind, "step": step, "time": time.time(), **fields})

    def close(self) -> None:
        self._file.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


def _tensorboard_writer(folder: Path) -> Any:
    """A SummaryWriter when the tensorboard package is installed, else None (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(folder))


def read_metrics(path: str | Path, kind: str = "train") -> list[dict[str, Any]]:
    """The records of one kind from a metrics JSONL file, in order."""
    with open(path, encoding="utf-8") as f:
        return [record for record in map(json.loads, f) if record.get("kind") == kind]
