"""CPM-Bee pretraining on DeepSpeed ZeRO-3: config -> model -> engine -> data -> loop.

    deepspeed [--hostfile H] --num_gpus N --module trainer.pretrain --config run.yaml [--resume] [--set key=value ...]
    DS_ACCELERATOR=cpu deepspeed --num_gpus 2 --module trainer.pretrain --config run.yaml     # CPU, gloo

Each step runs `optimizer.grad_accumulation` micro-batches through the model and one
optimizer step; losses, evaluation, early stop and checkpoints are as README.md ("Training")
describes. `--resume` continues from the newest complete checkpoint (or starts fresh when
there is none) and gives the losses an uninterrupted run would have given.
"""

from __future__ import annotations

if __name__ == "__main__":  # the entry point: pick DeepSpeed's accelerator before anything imports deepspeed
    from trainer.engine import prepare_accelerator_env

    prepare_accelerator_env()

import argparse
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import deepspeed
import torch
import torch.distributed as dist

from corpus.atomic_file import write_text_atomically
from corpus.faults import fault_point, nan_loss_due
from schemas.run_config import RunConfig, load_run_config
from tokenization.tokenizer import CPMBeeTokenizer
from trainer.checkpoint import (
    CheckpointDir,
    CheckpointError,
    load_trainer_state,
    rng_state,
    save_trainer_state,
    set_rng_state,
    step_tag,
)
from trainer.data import MixtureLoader
from trainer.engine import Precision, build_engine, deepspeed_config, init_distributed, model_inputs, resolve_precision
from trainer.evaluation import EvalReport
from trainer.metrics import (
    EvalRecord,
    MetricsLog,
    StepRecord,
    TaskLossSums,
    average_over_ranks,
    gather_totals,
    mean_loss,
    run_log_dir,
    token_losses,
)
from trainer.mixture import Mixture
from trainer.model import CPMBee
from trainer.model_io import MODEL_CONFIG_FILE, load_weights_into
from trainer.param_stats import parameter_stats
from trainer.safe_load import UnsafeCheckpoint, deepspeed_reads_restricted
from trainer.task_eval import TaskEvaluation
from trainer.trace import TraceWriter


class NonFiniteLossError(RuntimeError):
    """Too many optimizer steps in a row had a non-finite loss."""


@dataclass
class LoopState:
    """The train loop's own state; saved in every checkpoint (per rank)."""

    step: int = 0  # optimizer steps done (skipped ones included)
    tokens_seen: int = 0  # non-padding tokens trained on, all ranks
    samples_seen: int = 0  # samples read by the training loaders, all ranks (epochs count these)
    nonfinite_in_a_row: int = 0
    best_eval: float | None = None  # best value of what early stop watches (eval.watch); None before the first
    evals_without_improvement: int = 0
    stopped_early: bool = False

    def record_eval(self, value: float, min_delta: float, patience: int | None, higher_is_better: bool = False) -> None:
        """Count an evaluation of the watched `value` (the eval loss, or an accuracy when
        `higher_is_better`): a new best resets the count of evaluations without improvement (an
        improvement must exceed `min_delta`; NaN never improves); `patience` of them in a row stops the run."""
        best = self.best_eval
        if best is None or not math.isfinite(best):  # none yet (inf: checkpoints of older versions)
            improved = not math.isnan(value)
        else:
            improved = value > best + min_delta if higher_is_better else value < best - min_delta
        if improved:
            self.best_eval, self.evals_without_improvement = value, 0
        else:
            self.evals_without_improvement += 1
        if patience is not None and self.evals_without_improvement >= patience:
            self.stopped_early = True


@dataclass
class TrainResult:
    """What `train` ends with (every rank gets the same)."""

    state: LoopState
    losses: list[float]  # per step of this process's run
    checkpoint: str | None  # tag of the last checkpoint written


ModelBuilder = Callable[[RunConfig], torch.nn.Module]


def build_model(run: RunConfig) -> torch.nn.Module:
    """A freshly initialised CPMBee for the run (same weights on every rank: seeded).

    Under ZeRO-3 it is built inside `deepspeed.zero.Init`: each module's weights are
    initialised whole and partitioned across ranks right away, so no rank ever holds the
    whole model (a 10B model in fp32 is 40 GB). Call it after the process group is up.
    """
    config = run.model.resolve()
    partitioned = deepspeed.zero.Init(
        config_dict_or_path=deepspeed_config(run, resolve_precision(run, config.half)), enabled=run.zero_stage == 3
    )
    torch.manual_seed(run.seed)
    with partitioned:
        model = CPMBee(config, activation_checkpointing=run.model.activation_checkpointing)
    if run.init_from is not None:
        load_weights_into(model, run.init_from, config)
    return model


class Trainer:
    """One run's components, wired: engine, loaders, checkpoint folder, metrics log."""

    def __init__(self, run: RunConfig, model_builder: ModelBuilder = build_model) -> None:
        self.run = run
        self.dist = dist
        self.rank, self.world_size = init_distributed()
        model_config = self.model_config = run.model.resolve()
        run.check_model(model_config, run.model.config or f"preset {run.model.preset}")
        self.tokenizer = CPMBeeTokenizer(run.data.vocab)
        if self.tokenizer.vocab_size > model_config.vocab_size:
            raise ValueError(
                f"{run.data.vocab}: {self.tokenizer.vocab_size} tokens, but the model has only "
                f"vocab_size={model_config.vocab_size} embedding rows"
            )
        model = model_builder(run)
        self.precision: Precision = resolve_precision(run, model_config.half)
        self.engine, self.schedule = build_engine(model, run, self.precision)
        self.device = self.engine.device
        # dropout differs per rank and continues across resumes (the RNG is checkpointed)
        torch.manual_seed(run.seed * 1000 + self.rank + 1)
        self.loader = MixtureLoader.from_config(run.data, run.data.manifest, self.tokenizer, self.rank, self.world_size, run.seed)
        self.eval_loader = None
        if run.data.eval_manifest is not None:
            self.eval_loader = MixtureLoader.from_config(run.data, run.data.eval_manifest, self.tokenizer, self.rank,
                                                         self.world_size, run.seed)
            self._eval_start = self.eval_loader.state_dict()  # every evaluation replays these batches
        self.task_eval = None
        if run.data.eval_manifest is not None and run.eval.samples > 0:
            self.task_eval = TaskEvaluation(run, self.engine, self.tokenizer, self.rank, self.world_size)
            self._check_watched_samples()
        self.store = CheckpointDir(run.checkpoint.dir, run.checkpoint.keep_last)
        self.state = LoopState()
        self.epoch_samples = epoch_samples(run.data.manifest) if run.epochs is not None else None
        if run.start_step:
            # CPM-Bee's --start-step: the count and the LR schedule go on from there (a resume overrides both)
            self.state.step = run.start_step
            self.schedule.start_at(run.start_step)
        self.last_checkpoint: str | None = None
        total = run.max_steps if run.max_steps is not None else f"{run.epochs} epochs"
        self.log = MetricsLog(run_log_dir(run), run.name, total, run.log_interval) if self.rank == 0 else None
        self.trace = TraceWriter(run_log_dir(run), self.rank) if run.trace else None
        if self.rank == 0:
            length = f"{run.max_steps} steps" if run.max_steps is not None else f"{run.epochs} epochs of {self.epoch_samples:,} samples"
            print(f"| training to {length}" + (f", from step {run.start_step}" if run.start_step else "")
                  + (f", weights from {run.init_from}" if run.init_from else ""), flush=True)  # fmt: skip

    # ---------------------------------------------------------------- checkpoints

    def save(self) -> None:
        """Save the engine, every rank's data/RNG/loop state, then publish the folder (rank 0)."""
        tag = step_tag(self.state.step)
        if self.rank == 0:
            self.store.prepare(tag)
        self.dist.barrier()
        tmp_name = self.store.tmp_name(tag)
        self.engine.save_checkpoint(str(self.store.root), tag=tmp_name, save_latest=False,
                                    exclude_frozen_parameters=self._has_frozen_parameters())  # fmt: skip
        if self.rank == 0:
            fault_point("save", self.state.step)
        trainer_state = {
            "step": self.state.step, "rank": self.rank, "world_size": self.world_size,
            "loop": asdict(self.state), "data": self.loader.state_dict(), "rng": rng_state(),
        }  # fmt: skip
        save_trainer_state(self.store.root / tmp_name, self.rank, trainer_state)
        if self.rank == 0:  # so that load_model / bee export / bee generate find the model's shape
            write_text_atomically(self.store.root / tmp_name / MODEL_CONFIG_FILE, self.model_config.model_dump_json(indent=2) + "\n")
        self.dist.barrier()  # every rank has written all its files
        if self.rank == 0:
            self.store.publish(tag)
            self.log.event("checkpoint", self.state.step, tag=tag)
        self.dist.barrier()
        self.last_checkpoint = tag

    def _has_frozen_parameters(self) -> bool:
        return any(not p.requires_grad for p in self.engine.module.parameters())

    def resume(self) -> bool:
        """Load the newest complete checkpoint, if any. Returns whether one was loaded.
        Raises CheckpointError when it cannot be used."""
        tag = self.store.latest()
        if tag is None:
            if self.rank == 0:
                print(f"| resume: no checkpoint in {self.store.root}, starting from step 0", flush=True)
            return False
        with deepspeed_reads_restricted(self.store.root / tag):  # a crafted file is refused, never run
            path, _ = self.engine.load_checkpoint(
                str(self.store.root), tag=tag, load_optimizer_states=True, load_lr_scheduler_states=True,
                load_module_strict=not self._has_frozen_parameters(),
            )  # fmt: skip
        if path is None:
            raise CheckpointError(f"{self.store.root / tag}: DeepSpeed could not load this checkpoint")
        saved = load_trainer_state(self.store.root / tag, self.rank, self.world_size)
        self.state = LoopState(**saved["loop"])
        self.loader.load_state_dict(saved["data"])
        set_rng_state(saved["rng"])
        self.last_checkpoint = tag
        if self.rank == 0:
            print(f"| resumed from {self.store.root / tag} at step {self.state.step}", flush=True)
            self.log.event("resume", self.state.step, tag=tag)
        return True

    # ---------------------------------------------------------------- steps

    def _all_reduce(self, values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        self.dist.all_reduce(tensor)
        return tensor.tolist()

    def train_step(self) -> StepRecord:
        """One optimizer step over `grad_accumulation` micro-batches. Returns its StepRecord."""
        started = time.perf_counter()
        task_sums = TaskLossSums()
        loss_total, tokens, waited = 0.0, 0, 0.0
        micro_batches = self.run.optimizer.grad_accumulation
        inspected = None
        for micro_batch in range(micro_batches):
            batch = next(self.loader)
            waited += self.loader.last_wait_seconds
            if self.trace is not None:
                self.trace.write(self.state.step + 1, micro_batch, batch["origins"])
            inputs = model_inputs(batch, self.device)
            logits, _ = self.engine(**inputs)
            target = torch.from_numpy(batch["target"]).to(self.device)
            losses, predicted = token_losses(logits, target)
            loss = mean_loss(losses, predicted)
            if nan_loss_due(self.state.step + 1):
                loss = loss * float("nan")
            # one non-finite loss anywhere poisons every rank's gradients (they are reduced
            # together), so that DeepSpeed's overflow check skips the step on all ranks: fp16
            # backs off its loss scale, fp32/bf16 see an invalid gradient norm
            finite = self._all_reduce([float(torch.isfinite(loss).item())])[0] == self.world_size
            if not finite and torch.isfinite(loss):
                loss = loss * float("nan")
            self.engine.backward(loss)
            if micro_batch == micro_batches - 1 and self._inspect_due():
                inspected = self._inspect()  # after backward, before the step frees the gradients
            self.engine.step()
            task_sums.add(losses.detach(), predicted, torch.from_numpy(batch["task_ids"]).to(self.device), batch["task_names"])
            loss_total += loss.item()
            tokens += int(batch["length"].sum())
        if self.trace is not None:
            self.trace.flush()
        fault_point("step", self.state.step + 1)
        read = float(sum(self.loader.counters()["samples_read"].values()))  # this rank's, whole run
        loss_sum, token_sum, read_sum = self._all_reduce([loss_total / micro_batches, float(tokens), read])
        per_rank: list[dict[str, float]] = [{} for _ in range(self.world_size)]
        self.dist.all_gather_object(per_rank, task_sums.means())
        self.state.step += 1
        self.state.tokens_seen += int(token_sum)
        self.state.samples_seen = int(read_sum)
        applied = self.engine.was_step_applied()
        loss = loss_sum / self.world_size
        grad_norm = self.engine.get_global_grad_norm()
        if inspected is not None and self.log is not None:
            self.log.parameter_stats(self.state.step, *inspected)
        return StepRecord(
            step=self.state.step, loss=loss, task_loss=average_over_ranks(per_rank),
            lr=self._lr_of_last_step(applied), loss_scale=float(getattr(self.engine.optimizer, "loss_scale", 1.0)),
            grad_norm=float(grad_norm) if grad_norm is not None else float("nan"), applied=applied,
            tokens=int(token_sum), step_seconds=time.perf_counter() - started, data_wait_seconds=waited,
            samples_seen=self.state.samples_seen,
        )  # fmt: skip

    def _inspect_due(self) -> bool:
        return self.run.inspect_iters is not None and (self.state.step + 1) % self.run.inspect_iters == 0

    def _inspect(self) -> tuple[dict[str, dict[str, float]], float]:
        """Per-group weight and gradient statistics (trainer.param_stats) and the seconds they took."""
        started = time.perf_counter()
        stats = parameter_stats(self.engine.module.named_parameters(), self.device)
        return stats, time.perf_counter() - started

    def _lr_of_last_step(self, applied: bool) -> float:
        # the schedule already moved on after an applied step; report the rate the step used
        step = self.schedule.applied_steps - 1 if applied else self.schedule.applied_steps
        return self.schedule.rate_at(max(step, 0))

    def _check_finite(self, loss: float, applied: bool) -> None:
        # fp16 skips steps as part of loss scaling; only a non-finite loss counts there
        bad = not math.isfinite(loss) or (not applied and self.precision != "fp16")
        self.state.nonfinite_in_a_row = self.state.nonfinite_in_a_row + 1 if bad else 0
        if self.state.nonfinite_in_a_row >= self.run.max_nonfinite_steps:
            raise NonFiniteLossError(
                f"step {self.state.step}: the loss was not finite (or the step was skipped for non-finite "
                f"gradients) {self.state.nonfinite_in_a_row} steps in a row (max_nonfinite_steps="
                f"{self.run.max_nonfinite_steps}); the last complete checkpoint is "
                f"{self.last_checkpoint or 'none'}. Lower optimizer.lr, check the data, or resume from it."
            )

    @torch.no_grad()
    def evaluate(self) -> tuple[float, dict[str, float]]:
        """Token-weighted loss over the same `eval.batches` held-out micro-batches on every rank,
        and per task."""
        self.eval_loader.load_state_dict(self._eval_start)
        self.engine.eval()
        sums = TaskLossSums()
        total, count = 0.0, 0
        for _ in range(self.run.eval.batches):
            batch = next(self.eval_loader)
            logits, _ = self.engine(**model_inputs(batch, self.device))
            losses, predicted = token_losses(logits, torch.from_numpy(batch["target"]).to(self.device))
            sums.add(losses, predicted, torch.from_numpy(batch["task_ids"]).to(self.device), batch["task_names"])
            total += float(losses.sum())
            count += int(predicted.sum())
        self.engine.train()
        total, count = self._all_reduce([total, float(count)])
        task_loss = {name: value / n for name, (value, n) in gather_totals(sums.totals()).items()}  # every rank's tokens
        return (total / count if count else float("nan")), task_loss

    def _check_watched_samples(self) -> None:
        """Raise ValueError when early stop watches a score the eval manifest has no samples for."""
        watch, task_eval = self.run.eval.watch, self.task_eval
        needed = {"accuracy": task_eval.option_samples, "generation_accuracy": task_eval.option_samples,
                  "char_f1": task_eval.free_samples}.get(watch)  # fmt: skip
        if needed == 0:
            kind = "free-text answers" if watch == "char_f1" else "an option as answer (<option_N>)"
            raise ValueError(f"eval.watch {watch}: {self.run.data.eval_manifest} has no samples with {kind} "
                             f"among the first eval.samples={self.run.eval.samples} of each task")  # fmt: skip

    def _after_eval(self, loss: float, task_loss: dict[str, float], report: EvalReport | None) -> None:
        eval_config = self.run.eval
        total = report.total().as_dict() if report is not None else {}
        watched = {"loss": loss, "accuracy": total.get("accuracy_perplexity"),
                   "generation_accuracy": total.get("accuracy_generation"), "char_f1": total.get("char_f1")}  # fmt: skip
        value = watched[eval_config.watch]
        value = float("nan") if value is None else value
        self.state.record_eval(value, eval_config.min_delta, eval_config.patience, eval_config.higher_is_better)
        if self.log is not None:
            self.log.eval_result(EvalRecord(
                step=self.state.step, loss=loss, task_loss=task_loss,
                tasks={name: score.as_dict() for name, score in report.tasks.items()} if report is not None else {},
                overall={key: watched[key] for key in ("accuracy", "generation_accuracy", "char_f1") if watched[key] is not None},
                watch=eval_config.watch, value=value, best=self.state.best_eval,
                evals_without_improvement=self.state.evals_without_improvement,
                task_seconds=report.seconds if report is not None else 0.0,
            ))  # fmt: skip
            if self.state.stopped_early:
                self.log.event("early_stop", self.state.step, watch=eval_config.watch, best_eval=self.state.best_eval)
                print(f"| early stop at step {self.state.step}: {eval_config.watch} did not improve in "
                      f"{eval_config.patience} evaluations", flush=True)  # fmt: skip

    # ---------------------------------------------------------------- loop

    def fit(self) -> TrainResult:
        """Train until max_steps (or early stop); checkpoint every interval and at the end."""
        run = self.run
        losses: list[float] = []
        saved_at = self.state.step
        try:
            while not self.finished():
                record = self.train_step()
                losses.append(record.loss)
                if self.log is not None:
                    self.log.train_step(record)
                self._check_finite(record.loss, record.applied)
                if self.eval_loader is not None and self.state.step % run.eval.interval == 0:
                    loss, task_loss = self.evaluate()
                    self._after_eval(loss, task_loss, self.task_eval.run() if self.task_eval is not None else None)
                if self.state.step % run.checkpoint.interval == 0 or self.state.stopped_early:
                    self.save()
                    saved_at = self.state.step
            if saved_at != self.state.step:
                self.save()
            self._report_data()
        finally:
            self.close()
        return TrainResult(self.state, losses, self.last_checkpoint)

    def finished(self) -> bool:
        """max_steps reached, `epochs` passes over the training data read, or stopped early."""
        if self.state.stopped_early:
            return True
        if self.run.max_steps is not None:
            return self.state.step >= self.run.max_steps
        return self.state.samples_seen >= self.run.epochs * self.epoch_samples

    def _report_data(self) -> None:
        """Where rank 0's samples came from (token shards or tokenized online) and what was skipped."""
        if self.log is None:
            return
        counts = self.loader.counters()
        self.log.event("data", self.state.step, **counts)
        read = counts["samples_read"]
        skipped = ", ".join(f"{key}: {n}" for key, n in sorted(counts["rejects"].items()))
        print(f"| data (rank 0): {read.get('shards', 0)} samples from token shards, {read.get('online', 0)} "
              f"tokenized online, {sum(counts['rejects'].values())} skipped ({skipped or 'none'})", flush=True)

    def close(self) -> None:
        self.loader.close()
        if self.eval_loader is not None:
            self.eval_loader.close()
        if self.log is not None:
            self.log.close()
        if self.trace is not None:
            self.trace.close()


def epoch_samples(manifest_path: str) -> int:
    """Samples in one pass over a mixture: sum of weight x nlines over its datasets (the mixture
    draws a dataset with probability weight x nlines, so a pass reads each dataset about
    weight times). Raises ValueError for an empty mixture."""
    total = round(sum(source.entry.weight * source.nlines for source in Mixture(manifest_path).sources))
    if total <= 0:
        raise ValueError(f"{manifest_path}: the mixture holds no samples (sum of weight x nlines is 0): epochs cannot be counted")
    return total


def train(run: RunConfig, resume: bool = False, model_builder: ModelBuilder = build_model) -> TrainResult:
    """Run training for `run` in this process (one rank of a DeepSpeed launch)."""
    trainer = Trainer(run, model_builder)
    if resume:
        trainer.resume()
    return trainer.fit()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="Run config (YAML or JSON), schemas.RunConfig.")
    parser.add_argument("--resume", action="store_true", help="Continue from the newest complete checkpoint.")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="Override a config field, e.g. --set optimizer.lr=3e-4 (repeatable).")  # fmt: skip
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)  # set by the launcher
    return parser.parse_args(argv)


def exit_on_sigterm() -> None:
    """Turn the launcher's SIGTERM (sent to every rank when one fails) into SystemExit, so that
    `finally` blocks run and the data-loader processes are stopped rather than orphaned."""

    def _exit(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


def run_entry_point(job: Callable[..., Any], argv: list[str] | None = None) -> int:
    """What `python -m trainer.pretrain` and `-m trainer.finetune` do in each rank: parse the launcher's
    arguments, load the run config, run `job(run, resume=...)`; exit code 3 on a non-finite abort,
    2 on a checkpoint that cannot be resumed or fine-tuned from (or is refused as unsafe)."""
    exit_on_sigterm()
    args = parse_args(argv)
    run = load_run_config(args.config, args.set)
    try:
        job(run, resume=args.resume)
    except NonFiniteLossError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 3
    except (CheckpointError, UnsafeCheckpoint) as error:  # a checkpoint it cannot (or must not) load
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_entry_point(train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
