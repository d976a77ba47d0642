"""`RunConfig`: one training run (pretraining or fine-tuning), read from YAML/JSON.

Sections: `model` (a preset or a config file), `data` (mixture manifests, vocabulary, batch
shape), `optimizer`, `schedule`, `precision`/`zero_stage`, `checkpoint`, `eval`, `finetune`.
Relative paths are resolved against the config file's folder by `load_run_config`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.loading import SchemaError, parse_file, parse_text, validate_data
from schemas.model_config import ModelConfig, load_model_config, preset


# Upper bounds: far above any real run, low enough that a typo (1e12) fails here, not as a
# MemoryError deep in the data loader.
MAX_BATCH_SIZE = 4096  # rows per micro-batch per rank (CPM-Bee 10B trained with 2-8)
MAX_LENGTH = 1 << 17  # tokens per row (CPM-Bee: 2048)
MAX_DEPTH = 64  # segment-tree depth buckets (CPM-Bee: 16)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Section):
    """Which model to train: exactly one of `preset` and `config`."""

    preset: str | None = Field(default=None, description="Name of a schemas.PRESETS entry (e.g. 'tiny', 'cpm-bee-1b').")
    config: str | None = Field(default=None, description="Path to a model config: CPM-Bee's JSON (ModelConfig) or the HF port's config.json.")
    activation_checkpointing: bool = Field(default=False, description="Recompute each block's activations in backward.")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ModelSection:
        if (self.preset is None) == (self.config is None):
            raise ValueError("set exactly one of model.preset and model.config")
        if self.preset is not None:
            try:
                preset(self.preset)
            except KeyError as error:  # pydantic reports ValueError only
                raise ValueError(error.args[0]) from None
        return self

    def resolve(self) -> ModelConfig:
        """The ModelConfig this section names. Raises SchemaError for a bad config file."""
        return preset(self.preset) if self.preset is not None else load_model_config(self.config)


class DataSection(_Section):
    """Where the batches come from; field names follow `trainer.stream.StreamConfig`'s."""

    manifest: str = Field(description="Training mixture manifest (datasets.json).")
    eval_manifest: str | None = Field(default=None, description="Held-out mixture manifest for evaluation.")
    vocab: str = Field(description="Vocabulary file in CPM-Bee's format (one token a line).")
    batch_size: int = Field(ge=1, le=MAX_BATCH_SIZE, description="Rows per micro-batch, per rank.")
    max_length: int = Field(ge=2, le=MAX_LENGTH, description="Tokens per row.")
    max_depth: int = Field(
        default=16, ge=2, le=MAX_DEPTH,
        description="Depth buckets of the segment tree (CPM-Bee: 16; its pretraining used 8); the model needs max_depth² segment buckets.",
    )  # fmt: skip
    weight_by: Literal["lines", "tokens"] = Field(default="lines", description="Sample datasets by weight x nlines (CPM-Bee) or x ntokens.")
    shuffle_answers: bool = Field(default=True, description="Shuffle the fields under <ans> (CPM-Bee does).")
    token_shards: bool = Field(default=True, description="Read fresh token shards (bee tokenize) of datasets without a transform instead of tokenizing them online.")
    prefetch: int = Field(default=2, ge=1, le=64, description="Batches made ahead by the background data process.")
    background: bool = Field(default=True, description="Make batches in a separate process.")


class OptimizerSection(_Section):
    """AdamW as DeepSpeed runs it."""

    lr: float = Field(default=1e-3, gt=0, description="Base learning rate (noam: the peak is lr / sqrt(warmup_steps)).")
    weight_decay: float = Field(default=0.01, ge=0, description="Decoupled weight decay.")
    betas: tuple[float, float] = Field(default=(0.9, 0.95), description="Adam betas.")
    eps: float = Field(default=1e-8, gt=0, description="Adam epsilon.")
    grad_clip: float = Field(default=1.0, ge=0, description="Clip the global gradient norm to this (0: off). CPM-Bee: 1.0.")
    grad_accumulation: int = Field(default=1, ge=1, le=100_000, description="Micro-batches per optimizer step.")


class ScheduleSection(_Section):
    """Learning-rate schedule (trainer.schedules)."""

    kind: Literal["noam", "cosine", "linear", "constant"] = Field(default="noam", description="CPM-Bee used noam.")
    warmup_steps: int = Field(default=2000, ge=0, description="Warmup length in optimizer steps.")
    decay_steps: int | None = Field(default=None, ge=1, description="Step where cosine/linear decay ends (default: max_steps).")
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="Final rate as a fraction of lr (cosine/linear).")


class CheckpointSection(_Section):
    """Where and how often to save."""

    dir: str = Field(description="Checkpoint folder: one sub-folder per saved step plus a `latest` pointer.")
    interval: int = Field(default=1000, ge=1, description="Save every this many steps (and at the end).")
    keep_last: int = Field(default=3, ge=1, le=10_000, description="Complete checkpoints kept; older ones are deleted.")


# what early stopping can watch: the eval loss (lower is better) or a pooled task-evaluation
# score (higher is better): option-perplexity accuracy, generation accuracy, free-answer char F1
EVAL_WATCH_HIGHER_IS_BETTER = {"loss": False, "accuracy": True, "generation_accuracy": True, "char_f1": True}


class EvalSection(_Section):
    """Held-out evaluation and early stop (needs data.eval_manifest): the token-weighted loss on
    `batches` micro-batches, and task evaluation (what `bee eval` scores) on `samples` samples per task."""

    interval: int = Field(default=1000, ge=1, description="Evaluate every this many steps.")
    batches: int = Field(default=10, ge=1, le=100_000, description="Micro-batches per evaluation and rank (the same ones every time).")
    samples: int = Field(
        default=100, ge=0, le=1_000_000,
        description="Task evaluation: the first this many samples of each task of the eval manifest (the same ones every "
        "time, shared out over the ranks) are scored: accuracy by option perplexity for samples whose answer is an option "
        "(<option_N>); 0 turns task evaluation off.",
    )  # fmt: skip
    generation: bool = Field(
        default=False,
        description="Task evaluation also scores by beam-search generation: accuracy on option samples, exact match and "
        "char F1 on free answers (several forward passes per sample: costly on CPU).",
    )  # fmt: skip
    score: Literal["text", "label"] = Field(
        default="text", description="Option perplexity of each option's text or of its label token <option_N> (as `bee eval --score`)."
    )
    watch: Literal["loss", "accuracy", "generation_accuracy", "char_f1"] = Field(
        default="loss",
        description="What early stop watches: the eval loss (lower is better), or, pooled over all tasks, accuracy by "
        "option perplexity, accuracy by generation, or char F1 of free answers (higher is better).",
    )  # fmt: skip
    patience: int | None = Field(default=None, ge=1, description="Stop after this many evaluations without improvement.")
    min_delta: float = Field(default=0.0, ge=0, description="Improvement smaller than this does not count.")

    @model_validator(mode="after")
    def _watch_is_scored(self) -> EvalSection:
        if self.watch != "loss" and self.samples == 0:
            raise ValueError(f"eval.watch {self.watch} needs task evaluation: set eval.samples above 0")
        if self.watch in ("generation_accuracy", "char_f1") and not self.generation:
            raise ValueError(f"eval.watch {self.watch} is scored by generation: set eval.generation true")
        return self

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger watched value is an improvement."""
        return EVAL_WATCH_HIGHER_IS_BETTER[self.watch]


class FinetuneSection(_Section):
    """Fine-tuning from a pretrained model (trainer/finetune.py)."""

    init_from: str = Field(description="Pretrained weights: a .pt/.bin state dict (cpm_live or HF names) or a checkpoint folder.")
    method: Literal["full", "lora"] = Field(default="lora", description="Train every weight, or LoRA deltas only.")
    lora_rank: int = Field(default=8, ge=1, le=4096, description="Rank of the LoRA update.")
    lora_alpha: float = Field(default=16.0, gt=0, description="LoRA scale numerator (update scaled by alpha / rank).")
    lora_dropout: float = Field(default=0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    lora_targets: list[str] = Field(
        default=["project_q", "project_k", "project_v", "attention_out", "w_0", "w_1", "w_out"],
        description="Names of the projections that get a LoRA update (attention and feed-forward).",
    )


class RunConfig(_Section):
    """One training run."""

    name: str = Field(default="run", description="Run name, used in log file names.")
    model: ModelSection
    data: DataSection
    optimizer: OptimizerSection = OptimizerSection()
    schedule: ScheduleSection = ScheduleSection()
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="auto: bf16 on GPU when the model config says half, fp32 otherwise (and always on CPU)."
    )
    fp16_initial_loss_scale_power: int = Field(default=15, ge=0, le=32, description="fp16: start the dynamic loss scale at 2**this (CPM-Bee: 32768).")
    zero_stage: Literal[0, 1, 2, 3] = Field(default=3, description="DeepSpeed ZeRO stage.")
    deepspeed_config: str | None = Field(
        default=None, description="DeepSpeed JSON to start from (default: infra/deepspeed/zero3_<precision>.json)."
    )
    checkpoint: CheckpointSection
    eval: EvalSection = EvalSection()
    finetune: FinetuneSection | None = None
    seed: int = Field(default=1234, description="Seed of model init, data and dropout.")
    init_from: str | None = Field(
        default=None,
        description="Pretraining: weights to continue from (a CPM-Bee .pt, an HF port file or folder, or a checkpoint "
        "folder of this trainer); optimizer state starts fresh. Fine-tuning uses finetune.init_from.",
    )
    start_step: int = Field(
        default=0, ge=0,
        description="The step a fresh run starts at (CPM-Bee's --start-step): step count, checkpoint names and the LR "
        "schedule continue from it. A resumed run takes its step from the checkpoint.",
    )  # fmt: skip
    max_steps: int | None = Field(default=None, ge=1, description="Optimizer steps to train (counting from step 0, resumes included). Set this or epochs.")
    epochs: int | None = Field(
        default=None, ge=1,
        description="Fine-tuning: train this many passes over the training data instead of max_steps; a pass is "
        "sum(weight x nlines) samples over the mixture's datasets (all ranks together).",
    )  # fmt: skip
    log_interval: int = Field(default=1, ge=1, description="Print a progress line every this many steps.")
    inspect_iters: int | None = Field(
        default=None, ge=1,
        description="Every this many steps, log mean/std/max of weights and gradients per parameter group (CPM-Bee's "
        "--inspect-iters) to the metrics log and TensorBoard.",
    )  # fmt: skip
    log_dir: str | None = Field(default=None, description="Folder for metrics JSONL and TensorBoard (default: checkpoint.dir/logs).")
    max_nonfinite_steps: int = Field(default=10, ge=1, description="Abort after this many steps in a row with a non-finite loss.")
    trace: bool = Field(default=True, description="Record which samples each step's rows hold (log_dir/trace/, read by `bee trace`).")

    @model_validator(mode="after")
    def _eval_needs_manifest(self) -> RunConfig:
        if self.eval.patience is not None and self.data.eval_manifest is None:
            raise ValueError("eval.patience is set but data.eval_manifest is not: early stop needs a held-out manifest")
        return self

    @model_validator(mode="after")
    def _length_and_start(self) -> RunConfig:
        if (self.max_steps is None) == (self.epochs is None):
            raise ValueError("set exactly one of max_steps and epochs")
        if self.epochs is not None:
            if self.finetune is None:
                raise ValueError("epochs is for fine-tuning (a finetune: section); pretraining sets max_steps")
            if self.schedule.kind in ("cosine", "linear") and self.schedule.decay_steps is None:
                raise ValueError(f"schedule.kind {self.schedule.kind} with epochs needs schedule.decay_steps (there is no max_steps to decay to)")
        if self.max_steps is not None and self.start_step >= self.max_steps:
            raise ValueError(f"start_step {self.start_step} is not below max_steps {self.max_steps}: nothing to train")
        if self.init_from is not None and self.finetune is not None:
            raise ValueError("init_from is for pretraining; a fine-tuning run names its weights in finetune.init_from")
        return self

    @model_validator(mode="after")
    def _preset_fits_data(self) -> RunConfig:
        if self.model.preset is not None:  # a model config file is checked at start-up (check_model)
            problems = self.model_problems(preset(self.model.preset))
            if problems:
                raise ValueError("; ".join(problems))
        return self

    def model_problems(self, model: ModelConfig) -> list[str]:
        """What in this run the model `model` cannot do (empty when it fits): each problem says
        which fields clash and what to change."""
        problems = []
        buckets_needed = self.data.max_depth**2  # segment relation up * max_depth + down + 1, up/down < max_depth
        if model.position_bias_num_segment_buckets < buckets_needed:
            largest = math.isqrt(model.position_bias_num_segment_buckets)
            problems.append(
                f"data.max_depth {self.data.max_depth} needs {buckets_needed} segment-relation buckets "
                f"(max_depth²) but the model has position_bias_num_segment_buckets="
                f"{model.position_bias_num_segment_buckets}: set data.max_depth <= {largest} or use a model with more buckets"
            )
        return problems

    def check_model(self, model: ModelConfig, source: str) -> None:
        """Raise SchemaError (naming `source`) when `model_problems(model)` finds any."""
        problems = self.model_problems(model)
        if problems:
            raise SchemaError(source, problems)


# fields holding paths; made absolute against the config file's folder
_PATH_FIELDS = (
    ("model", "config"),
    ("data", "manifest"),
    ("data", "eval_manifest"),
    ("data", "vocab"),
    ("checkpoint", "dir"),
    ("finetune", "init_from"),
    (None, "init_from"),
    (None, "deepspeed_config"),
    (None, "log_dir"),
)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = value


def load_run_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read a run config (YAML or JSON) and apply `key.sub=value` overrides (values parsed as YAML).

    Relative paths in it are made absolute against the file's folder; overridden paths
    against the current directory. Raises SchemaError naming the file and field at fault.
    """
    path = Path(path)
    data = parse_file(path) or {}
    if not isinstance(data, dict):
        raise SchemaError(str(path), ["(top level): expected a mapping of sections"])
    _absolutize(data, path.resolve().parent)
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep:
            raise SchemaError(str(path), [f"override {override!r}: expected key.sub=value"])
        value = parse_text(raw, "value.yaml")
        _set_dotted(data, key.strip(), value)
        _absolutize(data, Path.cwd(), only=key.strip())
    return validate_data(RunConfig, data, str(path))


def _absolutize(data: dict[str, Any], base: Path, only: str | None = None) -> None:
    for section, field in _PATH_FIELDS:
        dotted = field if section is None else f"{section}.{field}"
        if only is not None and only != dotted:
            continue
        node = data if section is None else data.get(section)
        if isinstance(node, dict) and isinstance(node.get(field), str):
            node[field] = str((base / node[field]).resolve()) if not Path(node[field]).is_absolute() else node[field]
