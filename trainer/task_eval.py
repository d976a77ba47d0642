"""Task evaluation inside a training run: per-task accuracy on the eval manifest's samples.

The samples are read once (`eval.samples` per task, the same ones at every evaluation) and
each rank scores its share, `samples[rank::world_size]`, with `trainer.evaluation.Evaluator`
(what `bee eval` runs): option perplexity, then generation when `eval.generation` is set.

Under ZeRO-3 every forward pass gathers each layer's parameters from all ranks, so every
rank must make the same calls in the same order. The two ways call the model differently
(a whole forward through the DeepSpeed engine; the incremental `CPMBee.inference` of beam
search), so they run as two phases. Within a phase the ranks go in rounds (`Lockstep`): each
round every rank says whether it has a call to make (one small all-reduce), then each makes
its call, a rank without one a dummy call on an empty sample; the phase ends when no rank has
a call left. (How many calls a sample takes is not known beforehand: beam search stops when
its beams end.) The per-task counts are then summed over the ranks (`trainer.metrics.gather_totals`).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

import deepspeed
import torch
import torch.distributed as dist

from schemas.run_config import RunConfig
from tokenization.tokenizer import CPMBeeTokenizer
from trainer.eval_data import eval_samples
from trainer.evaluation import ANSWER_KEY, EvalReport, Evaluator, TaskScore, answer_losses, option_candidates
from trainer.generation import CPMBeeBeamSearch
from trainer.generation.stepper import Stepper
from trainer.metrics import gather_totals

# the padding call's sample: the shortest instance there is (its `<s>`, an empty answer, `</s>`)
DUMMY_SAMPLE: dict[str, Any] = {"input": "", ANSWER_KEY: ""}


class Lockstep:
    """Pairs the ranks' calls round by round: before each real call a rank votes 1, a rank whose
    work is done votes 0 and makes a dummy call while any rank still votes 1 (`finish`)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = device  # where the vote's tensor lives (nccl needs CUDA)
        self.padding = False  # inside a dummy call: its model calls cast no vote

    def _vote(self, working: int) -> int:
        if not dist.is_initialized():
            return working
        tensor = torch.tensor([working], dtype=torch.int64, device=self.device)
        dist.all_reduce(tensor)
        return int(tensor.item())

    def before_call(self) -> None:
        """This rank is about to make a real call (a collective: every rank takes part in each round)."""
        if not self.padding:
            self._vote(1)

    def finish(self, dummy_call: Callable[[], None]) -> int:
        """This rank's work is done: make dummy calls until every rank's is. Returns how many."""
        dummies = 0
        while self._vote(0) > 0:
            self.padding = True
            try:
                dummy_call()
            finally:
                self.padding = False
            dummies += 1
        return dummies


class LockstepModel:
    """The model as the Evaluator sees it in a training run: forwards go through the DeepSpeed
    engine (so ZeRO-3 gathers the weights), `inference` gathers the tied output projection's
    weight itself (it is used outside any module's forward), and every call takes its turn in
    `lockstep` (and is counted)."""

    def __init__(self, engine: Any, tokenizer: CPMBeeTokenizer, max_length: int, max_depth: int) -> None:
        self.engine, self.module = engine, engine.module
        self.lockstep = Lockstep(engine.device)
        self.tokenizer, self.max_length, self.max_depth = tokenizer, max_length, max_depth
        self.config, self.input_embedding, self.encoder = self.module.config, self.module.input_embedding, self.module.encoder
        self.partitioned = any(hasattr(p, "ds_id") for p in self.module.parameters())  # ZeRO-3
        self._signature = inspect.signature(self.module.inference)
        self.forwards = 0
        self.inference_calls = 0

    def __call__(self, **inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.lockstep.before_call()
        self.forwards += 1
        return self.engine(**inputs)

    def inference(self, *args: Any, logits: bool = True, **kwargs: Any) -> tuple[torch.Tensor | None, torch.Tensor, Any]:
        """`CPMBee.inference`; under ZeRO-3 every call makes the same collectives, logits or not."""
        self.lockstep.before_call()
        self.inference_calls += 1
        if not self.partitioned:
            return self.module.inference(*args, logits=logits, **kwargs)
        _, hidden, cache = self.module.inference(*args, logits=False, **kwargs)
        bound = self._signature.bind(*args, **kwargs).arguments
        embedding = self.input_embedding
        ext_table = embedding(bound["ext_table_ids"], bound["ext_table_sub"])  # (E, D); its hooks gather the weight
        with deepspeed.zero.GatheredParameters([embedding.weight]):
            out = embedding.projection(hidden, ext_table) if logits else None  # (N, Lq, V + E)
        return out, hidden, cache

    def eval(self) -> LockstepModel:
        self.engine.eval()
        return self

    def train(self, mode: bool = True) -> LockstepModel:
        self.engine.train(mode)
        return self

    def to(self, device: Any) -> LockstepModel:  # the engine already placed the model
        return self

    def dummy_forward(self) -> None:
        """One forward pass on DUMMY_SAMPLE (counted)."""
        answer_losses(self, self.tokenizer, [DUMMY_SAMPLE], max_length=self.max_length, max_depth=self.max_depth,
                      device=self.engine.device)  # fmt: skip

    def dummy_inference(self) -> None:
        """One `inference` call: DUMMY_SAMPLE's prompt (counted)."""
        batch = CPMBeeBeamSearch(self, self.tokenizer).prepare([dict(DUMMY_SAMPLE)])
        with torch.inference_mode():
            Stepper(self, batch, max_steps=1).start(1)


class TaskEvaluation:
    """A run's task evaluation: the samples of this rank, scored at every `eval.interval`."""

    def __init__(self, run: RunConfig, engine: Any, tokenizer: CPMBeeTokenizer, rank: int, world_size: int) -> None:
        settings = run.eval
        samples = list(eval_samples(run.data.eval_manifest, limit=settings.samples))
        self.option_samples = sum(option_candidates(s) is not None for _, s in samples if isinstance(s, dict))
        self.free_samples = sum(
            isinstance(s, dict) and ANSWER_KEY in s and option_candidates(s) is None for _, s in samples
        )  # fmt: skip
        self.shard = samples[rank::world_size]
        self.model = LockstepModel(engine, tokenizer, run.data.max_length, run.data.max_depth)
        self.evaluator = Evaluator(
            self.model, tokenizer, score=settings.score, generate=settings.generation, max_length=run.data.max_length,
            max_depth=run.data.max_depth, device=engine.device, examples_per_task=0,
        )  # fmt: skip

    @torch.no_grad()
    def run(self) -> EvalReport:
        """Score this rank's samples in lockstep with the other ranks (a collective: every rank
        calls it). Returns every rank's counts summed, per task."""
        started = time.perf_counter()
        report = self.evaluator.new_report()
        evaluator = self.evaluator
        scored = [(score, sample) for task, sample in self.shard
                  if (score := evaluator.count(task, sample, report)) is not None]  # fmt: skip
        model = self.model
        model.eval()
        try:
            for score, sample in scored:
                evaluator.by_perplexity(sample, score)
            model.lockstep.finish(model.dummy_forward)
            if evaluator.generate:
                for score, sample in scored:
                    evaluator.by_generation(sample, score)
                model.lockstep.finish(model.dummy_inference)
        finally:
            model.train()
        totals = gather_totals({task: score.as_totals() for task, score in report.tasks.items()})
        report.tasks = {task: TaskScore.from_totals(values) for task, values in totals.items()}
        report.seconds = time.perf_counter() - started
        return report
