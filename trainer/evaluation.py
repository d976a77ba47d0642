"""Task evaluation of a CPM-Bee model on structured samples (MiniCPM's two ways, CPM-Bee's format).

A sample whose answer is one of its options (`"<ans>": "<option_2>"` with the options in a
dict of the sample, as CCPM) is scored two ways:

- **by option perplexity**: each option in turn is made the answer and the model's loss on
  the answer tokens (and the closing `</s>`) is computed; the option with the lowest loss is
  the prediction. `score="text"` puts the option's text in `<ans>` (its loss summed, or its
  mean per token with `normalize=True`); `score="label"` puts the option's token (`<option_2>`),
  as CPM-Bee fine-tuning trains it;
- **by generation**: beam search fills an empty `<ans>` (`trainer.generation.CPMBeeBeamSearch`);
  right when it generates the gold option's token (or the gold option's text).

A sample with a free-text answer (a string, or a dict of named slots) is scored by generation:
exact match and character-level F1 (SQuAD's F1 over characters, the usual Chinese variant).

Results are per task; `EvalReport` renders the table, JSON and Markdown.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, field
from typing import Any

import numpy as np
import torch

from tokenization.convert import SampleError
from trainer.engine import model_inputs
from trainer.incontext import SampleRejected, build_instance
from trainer.metrics import token_losses
from trainer.packing import pack_rows

ANSWER_KEY = "<ans>"
_OPTION = re.compile(r"^<option_\d+>$")


def option_candidates(sample: dict[str, Any]) -> dict[str, str] | None:
    """`{"<option_N>": option text}` of a sample whose answer names one of its options, else None."""
    answer = sample.get(ANSWER_KEY)
    if not isinstance(answer, str) or not _OPTION.match(answer.strip()):
        return None
    for value in sample.values():
        if isinstance(value, dict) and answer.strip() in value and all(_OPTION.match(k) for k in value):
            if all(isinstance(v, str) for v in value.values()):
                return dict(value)
    return None


def char_f1(prediction: str, gold: str) -> float:
    """F1 of the characters two strings share (as multisets), whitespace ignored."""
    pred = [c for c in prediction if not c.isspace()]
    ref = [c for c in gold if not c.isspace()]
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def answer_text(answer: Any) -> str:
    """An answer as one string: a dict of slots joined in key order."""
    if isinstance(answer, dict):
        return "\n".join(f"{k}: {answer_text(v)}" for k, v in sorted(answer.items()))
    return "" if answer is None else str(answer)


@torch.no_grad()
def answer_losses(model: torch.nn.Module, tokenizer: Any, samples: Sequence[dict[str, Any]], *,
                  max_length: int, max_depth: int, device: torch.device | str, batch_size: int = 16,
                  ) -> list[tuple[float, int]]:
    """(summed loss, predicted tokens) of each sample's answer, one sample a row, in order.

    A sample that cannot be converted or is longer than `max_length` gives (inf, 0).
    """
    results: list[tuple[float, int]] = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        rows, where = [], []
        for i, sample in enumerate(chunk):
            try:
                rows.append([build_instance(tokenizer, sample, "eval", max_length=max_length, max_depth=max_depth)])
                where.append(i)
            except SampleRejected:
                pass
        chunk_results = [(float("inf"), 0)] * len(chunk)
        if rows:
            longest = max(len(row[0]) for row in rows)
            batch = pack_rows(rows, longest, tokenizer.vocab_size, tokenizer.bos_id, tokenizer.eos_id)
            logits, _ = model(**model_inputs(batch, torch.device(device)))
            losses, predicted = token_losses(logits, torch.from_numpy(batch["target"]).to(logits.device))
            sums, counts = losses.sum(dim=1).tolist(), predicted.sum(dim=1).tolist()
            for row, i in enumerate(where):
                chunk_results[i] = (sums[row], int(counts[row]))
        results.extend(chunk_results)
    return results


def choose_by_perplexity(model: torch.nn.Module, tokenizer: Any, sample: dict[str, Any], options: dict[str, str], *,
                         score: str = "text", normalize: bool = False, max_length: int = 2048, max_depth: int = 16,
                         device: torch.device | str = "cpu") -> str:
    """The option (`<option_N>`) whose answer loss is lowest."""
    labels = sorted(options)
    candidates = [{**sample, ANSWER_KEY: options[label] if score == "text" else label} for label in labels]
    losses = answer_losses(model, tokenizer, candidates, max_length=max_length, max_depth=max_depth, device=device)
    values = [total / max(count, 1) if normalize else total for total, count in losses]
    return labels[int(np.argmin(values))]


@dataclass
class TaskScore:
    """Running totals of one task."""

    samples: int = 0
    option_samples: int = 0
    perplexity_correct: int = 0
    generation_correct: int = 0  # option samples whose generated answer is right
    generation_samples: int = 0  # option samples scored by generation (none when generation is off)
    free_samples: int = 0
    exact_match: int = 0
    f1_sum: float = 0.0

    def as_totals(self) -> list[float]:
        """The counts as one list (summed over ranks by `trainer.metrics.gather_totals`)."""
        return [float(value) for value in astuple(self)]

    @classmethod
    def from_totals(cls, totals: Sequence[float]) -> TaskScore:
        """The inverse of `as_totals` (counts summed over ranks back into a TaskScore)."""
        *counts, f1_sum = totals
        return cls(*(round(value) for value in counts), f1_sum)

    def __add__(self, other: TaskScore) -> TaskScore:
        return TaskScore.from_totals([a + b for a, b in zip(self.as_totals(), other.as_totals())])

    def as_dict(self) -> dict[str, Any]:
        def ratio(a: float, b: int) -> float | None:
            return a / b if b else None

        accuracy_ppl = ratio(self.perplexity_correct, self.option_samples)
        accuracy_gen = ratio(self.generation_correct, self.generation_samples)
        better = None
        if accuracy_ppl is not None and accuracy_gen is not None:
            better = "perplexity" if accuracy_ppl >= accuracy_gen else "generation"
        return {
            "samples": self.samples, "option_samples": self.option_samples,
            "accuracy_perplexity": accuracy_ppl, "accuracy_generation": accuracy_gen, "better": better,
            "free_samples": self.free_samples, "exact_match": ratio(self.exact_match, self.free_samples),
            "char_f1": ratio(self.f1_sum, self.free_samples),
        }  # fmt: skip


@dataclass
class EvalReport:
    """Per-task scores, the settings used, and a few examples of each task's predictions."""

    tasks: dict[str, TaskScore] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def total(self) -> TaskScore:
        """Every task's counts together (accuracies pooled over all samples, not averaged over tasks)."""
        return sum(self.tasks.values(), TaskScore())

    def to_json(self) -> dict[str, Any]:
        samples = sum(t.samples for t in self.tasks.values())
        return {"tasks": {name: score.as_dict() for name, score in sorted(self.tasks.items())},
                "settings": self.settings, "samples": samples, "seconds": self.seconds,
                "samples_per_second": samples / self.seconds if self.seconds else None, "examples": self.examples}

    def rows(self) -> list[tuple[str, ...]]:
        def pct(value: float | None, mark: bool = False) -> str:
            return "—" if value is None else f"{100 * value:.2f}%" + (" ★" if mark else "")

        out = []
        for name, score in sorted(self.tasks.items()):
            data = score.as_dict()
            out.append((name, str(score.samples), pct(data["accuracy_perplexity"], data["better"] == "perplexity"),
                        pct(data["accuracy_generation"], data["better"] == "generation"),
                        pct(data["exact_match"]), pct(data["char_f1"])))
        return out

    COLUMNS = ("task", "samples", "acc (option ppl)", "acc (generation)", "exact match", "char F1")

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.COLUMNS) + " |", "|---|" + "---:|" * (len(self.COLUMNS) - 1)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        lines.append("")
        lines.append("★ marks the better of the two accuracies of a task. "
                     + ", ".join(f"{k}: {v}" for k, v in self.settings.items()))
        return "\n".join(lines) + "\n"


class Evaluator:
    """Scores samples with one model: option perplexity always, generation when `generate` is set."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, *, score: str = "text", normalize: bool = False,
                 generate: bool = True, beam_size: int = 3, max_new_tokens: int = 32, max_length: int = 2048,
                 max_depth: int = 16, device: torch.device | str = "cpu", examples_per_task: int = 3) -> None:
        if score not in ("text", "label"):
            raise ValueError(f"score must be 'text' or 'label', got {score!r}")
        self.model, self.tokenizer = model, tokenizer
        self.score, self.normalize, self.generate = score, normalize, generate
        self.beam_size, self.max_new_tokens = beam_size, max_new_tokens
        self.max_length, self.max_depth, self.device = max_length, max_depth, device
        self.examples_per_task = examples_per_task
        self._beam = None

    def _generated(self, sample: dict[str, Any]) -> Any:
        if self._beam is None:
            from trainer.generation import CPMBeeBeamSearch

            self._beam = CPMBeeBeamSearch(self.model, self.tokenizer)
        empty = {**sample, ANSWER_KEY: {k: "" for k in sample[ANSWER_KEY]} if isinstance(sample[ANSWER_KEY], dict) else ""}
        (filled,) = self._beam.generate([empty], beam_size=self.beam_size, max_length=self.max_new_tokens)
        return filled.get(ANSWER_KEY)

    def new_report(self, **settings: Any) -> EvalReport:
        """An empty report carrying this evaluator's settings (plus `settings`)."""
        return EvalReport(settings={
            "score": self.score, "normalize": self.normalize, "generation": self.generate,
            "beam_size": self.beam_size, "max_new_tokens": self.max_new_tokens, **settings,
        })  # fmt: skip

    def count(self, task: str, sample: Any, report: EvalReport) -> TaskScore | None:
        """Count a sample into its task's totals; None (not counted) when it is no structured
        sample with an answer. Scoring it is `by_perplexity` and `by_generation`'s job."""
        if not isinstance(sample, dict) or ANSWER_KEY not in sample:
            return None
        score = report.tasks.setdefault(task, TaskScore())
        score.samples += 1
        if option_candidates(sample) is not None:
            score.option_samples += 1
        return score

    def by_perplexity(self, sample: dict[str, Any], score: TaskScore) -> str | None:
        """Score an option sample by option perplexity into `score`; returns the option chosen
        (None for a sample whose answer is no option: nothing to do)."""
        options = option_candidates(sample)
        if options is None:
            return None
        chosen = choose_by_perplexity(self.model, self.tokenizer, sample, options, score=self.score,
                                      normalize=self.normalize, max_length=self.max_length,
                                      max_depth=self.max_depth, device=self.device)  # fmt: skip
        score.perplexity_correct += chosen == sample[ANSWER_KEY].strip()
        return chosen

    def by_generation(self, sample: dict[str, Any], score: TaskScore) -> Any:
        """Score a sample by beam search into `score`: an option sample is right when the gold
        option's token (or text) is generated; a free answer adds exact match and char F1.
        Returns what was generated."""
        gold = sample[ANSWER_KEY]
        options = option_candidates(sample)
        try:
            generated = self._generated(sample)
        except SampleError:  # not valid CPM-Bee input: nothing generated, scored wrong
            generated = None
        if options is not None:
            text = answer_text(generated).strip()
            score.generation_samples += 1
            score.generation_correct += text in (gold.strip(), options[gold.strip()].strip())
            return text
        score.free_samples += 1
        score.exact_match += answer_text(generated).strip() == answer_text(gold).strip()
        score.f1_sum += char_f1(answer_text(generated), answer_text(gold))
        return generated

    def evaluate(self, tasks: Iterable[tuple[str, dict[str, Any]]], report: EvalReport | None = None) -> EvalReport:
        """Score `(task name, sample)` pairs into `report` (a new one by default): option
        perplexity, then generation when `generate` is set, sample by sample."""
        import time

        report = report or self.new_report()
        started = time.perf_counter()
        shown: Counter[str] = Counter()
        self.model.eval()
        for task, sample in tasks:
            score = self.count(task, sample, report)
            if score is None:
                continue
            example: dict[str, Any] = {"task": task, "gold": sample[ANSWER_KEY]}
            chosen = self.by_perplexity(sample, score)
            if chosen is not None:
                example["by_perplexity"] = chosen
            if self.generate:
                example["by_generation"] = self.by_generation(sample, score)
            elif chosen is None:
                continue
            if shown[task] < self.examples_per_task:
                shown[task] += 1
                report.examples.append(example)
        report.seconds += time.perf_counter() - started
        return report
