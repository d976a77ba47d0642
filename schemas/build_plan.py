"""`BuildPlan`: several corpus builds run together by the corpus-build flow."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.build_config import BuildConfig


class BuildPlan(BaseModel):
    """One `BuildConfig` per dataset. A file holding a single `BuildConfig` is a plan of one."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[BuildConfig] = Field(min_length=1, description="The builds, run in this order.")

    @model_validator(mode="before")
    @classmethod
    def _single_build_is_a_plan_of_one(cls, data):
        if isinstance(data, dict) and "datasets" not in data:
            return {"datasets": [data]}
        return data

    @model_validator(mode="after")
    def _outputs_are_distinct(self) -> BuildPlan:
        outputs = [build.output for build in self.datasets]
        duplicated = sorted({output for output in outputs if outputs.count(output) > 1})
        if duplicated:
            raise ValueError(f"several datasets write to the same output: {', '.join(duplicated)}")
        return self
