"""`ModelConfig`: CPM-Bee's model config JSON, with the published sizes as presets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
