"""`ModelConfig`: CPM-Bee's model config JSON, with the published sizes as presets.

`load_model_config` also reads what CPM-Bee users have on disk: CPM-Bee's own config files
(keys of theirs that mean nothing here, such as `int4`, are ignored with a note) and the
Hugging Face port's `config.json` (`hidden_size`, `num_hidden_layers`, ...).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.loading import SchemaError, parse_file, validate_data

log = logging.getLogger(__name__)

# Attention/FFN layers kept by BMCook's pruning of the 48-layer model: 19 attention and
# 24 feed-forward layers remain (CPM-Bee README, "模型压缩"). `(mask_att, mask_ffn)`.
PRUNED_MASK_MODULES: list[tuple[bool, bool]] = [
    (False, False), (True, False), (False, False), (True, False), (True, True), (True, False),
    (True, True), (True, True), (False, False), (False, False), (True, True), (True, False),
    (True, False), (True, True), (False, False), (True, True), (False, False), (False, True),
    (True, False), (True, True), (False, False), (False, True), (True, True), (True, True),
    (False, False), (True, True), (False, False), (True, True), (True, True), (False, False),
    (True, True), (False, False), (True, True), (False, False), (True, True), (True, False),
    (True, True), (True, True), (True, True), (False, False), (True, True), (False, False),
    (True, True), (True, True), (False, False), (True, True), (False, False), (False, False),
]  # fmt: skip


class ModelConfig(BaseModel):
    """Hyper-parameters of a CPM-Bee model, field for field as in CPM-Bee's config files."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(gt=0, description="Rows of the token embedding (vocabulary size).")
    dim_model: int = Field(gt=0, description="Hidden size.")
    dim_ff: int = Field(gt=0, description="Inner size of the gated-GeLU feed-forward layer.")
    num_layers: int = Field(gt=0, description="Transformer blocks (masked modules included).")
    num_heads: int = Field(gt=0, description="Attention heads.")
    dim_head: int = Field(gt=0, description="Size of one attention head.")
    dropout_p: float = Field(default=0.0, ge=0.0, lt=1.0, description="Dropout probability.")
    position_bias_num_buckets: int = Field(default=256, gt=0, description="Relative-position buckets.")
    position_bias_num_segment_buckets: int = Field(default=256, gt=0, description="Segment-relation buckets.")
    position_bias_max_distance: int = Field(default=2048, gt=0, description="Largest bucketed distance.")
    eps: float = Field(default=1e-6, gt=0, description="RMS layer-norm epsilon.")
    half: bool = Field(default=True, description="Keep weights in float16 (bfloat16 on our GPU path).")
    mask_modules: list[tuple[bool, bool]] | None = Field(
        default=None,
        description="Per block (mask_attention, mask_ffn); a masked module is absent. None keeps all.",
    )

    @model_validator(mode="after")
    def _mask_modules_cover_every_layer(self) -> ModelConfig:
        if self.mask_modules is not None and len(self.mask_modules) != self.num_layers:
            raise ValueError(
                f"mask_modules has {len(self.mask_modules)} entries, expected one per layer ({self.num_layers})"
            )
        return self

    @property
    def num_attention_layers(self) -> int:
        masks = self.mask_modules or [(False, False)] * self.num_layers
        return sum(not att for att, _ in masks)

    @property
    def num_ffn_layers(self) -> int:
        masks = self.mask_modules or [(False, False)] * self.num_layers
        return sum(not ffn for _, ffn in masks)


def _bee(**sizes) -> ModelConfig:
    return ModelConfig(vocab_size=86583, dim_model=4096, **sizes)


# Sizes from CPM-Bee's README table: attention width = num_heads x dim_head.
PRESETS: dict[str, ModelConfig] = {
    "cpm-bee-10b": _bee(dim_ff=10240, num_layers=48, num_heads=32, dim_head=128),
    "cpm-bee-5b": _bee(dim_ff=10240, num_layers=48, num_heads=32, dim_head=128, mask_modules=PRUNED_MASK_MODULES),
    "cpm-bee-2b": _bee(dim_ff=5120, num_layers=48, num_heads=32, dim_head=64, mask_modules=PRUNED_MASK_MODULES),
    "cpm-bee-1b": _bee(dim_ff=1024, num_layers=48, num_heads=20, dim_head=64, mask_modules=PRUNED_MASK_MODULES),
    # Small enough to train on a CPU in tests and the demo; vocab_size fits the demo vocabulary;
    # 256 segment buckets, as CPM-Bee's, so the default data.max_depth 16 (16² buckets) fits.
    "tiny": ModelConfig(
        vocab_size=4096, dim_model=64, dim_ff=128, num_layers=2, num_heads=4, dim_head=16,
        position_bias_num_buckets=32, position_bias_num_segment_buckets=256,
        position_bias_max_distance=128, half=False,
    ),
}  # fmt: skip


def preset(name: str) -> ModelConfig:
    """A copy of the named preset; raises KeyError listing the known names."""
    if name not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name].model_copy(deep=True)


# ---- configs from elsewhere -----------------------------------------------------------------

# Keys of CPM-Bee's config files (and of its CPMBeeConfig objects) with no meaning here.
# Any other unknown key is still an error, so a misspelt field is caught.
CPM_BEE_IGNORED_KEYS: dict[str, str] = {
    "int4": "CPM-Bee's int4 weight-loading switch (older src/config/*.json)",
    "dtype": "CPMBeeConfig's torch dtype, derived from `half`",
}
# The rotary scale CPM-Bee hard-codes (EmbeddingExt distance_scale=16); the HF port makes it a key.
DISTANCE_SCALE = 16
# The HF port's (transformers' CpmBeeConfig) names for our fields; the rest share our names.
HF_FIELD_NAMES: dict[str, str] = {
    "hidden_size": "dim_model",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
}
# CpmBeeConfig's defaults, used for a field its config.json leaves out (as the port would).
HF_DEFAULTS: dict[str, Any] = {
    "vocab_size": 30720, "hidden_size": 4096, "num_attention_heads": 64, "dim_head": 64, "dim_ff": 10240,
    "num_hidden_layers": 32, "dropout_p": 0.0, "position_bias_num_buckets": 256,
    "position_bias_num_segment_buckets": 32, "position_bias_max_distance": 2048, "eps": 1e-6, "half": False,
}  # fmt: skip
HF_MODEL_TYPE = "cpmbee"


def is_hf_config(data: dict[str, Any]) -> bool:
    """Whether a parsed config is the HF port's `config.json` rather than CPM-Bee's own file."""
    return data.get("model_type") == HF_MODEL_TYPE or any(key in data for key in HF_FIELD_NAMES)


def model_config_from_dict(data: object, source: str) -> tuple[ModelConfig, list[str]]:
    """A ModelConfig from a parsed CPM-Bee config or HF port `config.json`.

    Returns the config and the keys that were ignored. Raises SchemaError naming `source`
    for a bad value, an unknown key in a CPM-Bee config, or a `distance_scale` other than 16.
    """
    if not isinstance(data, dict):
        raise SchemaError(source, ["(top level): expected a mapping of model hyper-parameters"])
    fields = set(ModelConfig.model_fields)
    if is_hf_config(data):
        merged = HF_DEFAULTS | data
        renamed = {HF_FIELD_NAMES.get(key, key): value for key, value in merged.items()}
        kept = {key: value for key, value in renamed.items() if key in fields}
        # everything else is the port's or transformers' own (architectures, use_cache, init_std, ...)
        ignored = sorted(key for key in data if HF_FIELD_NAMES.get(key, key) not in fields)
    else:
        kept = {key: value for key, value in data.items() if key not in CPM_BEE_IGNORED_KEYS and key != "distance_scale"}
        ignored = sorted(key for key in data if key in CPM_BEE_IGNORED_KEYS)
    scale = data.get("distance_scale", DISTANCE_SCALE)
    if scale != DISTANCE_SCALE:
        raise SchemaError(source, [f"distance_scale: only CPM-Bee's rotary scale {DISTANCE_SCALE} is supported (got {scale})"])
    return validate_data(ModelConfig, kept, source), ignored


def load_model_config(path: str | Path) -> ModelConfig:
    """Read a model config file: CPM-Bee's JSON (this project's too) or the HF port's `config.json`.

    Keys that mean nothing here are ignored with a one-line note on the log. Raises
    SchemaError naming the file and field at fault.
    """
    config, ignored = model_config_from_dict(parse_file(path), str(path))
    if ignored:
        log.warning("%s: ignoring keys this trainer does not use: %s", path, ", ".join(ignored))
    return config


def to_hf_config(config: ModelConfig) -> dict[str, Any]:
    """The HF port's `config.json` for `config` (transformers' CpmBeeConfig field names)."""
    ours_to_hf = {ours: hf for hf, ours in HF_FIELD_NAMES.items()}
    fields = {ours_to_hf.get(key, key): value for key, value in config.model_dump().items()}
    fields["mask_modules"] = [list(pair) for pair in config.mask_modules] if config.mask_modules else None
    return {"architectures": ["CpmBeeForCausalLM"], "model_type": HF_MODEL_TYPE, **fields,
            "distance_scale": DISTANCE_SCALE, "init_std": 1.0, "use_cache": True}  # fmt: skip
