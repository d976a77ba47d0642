"""`RunnerProfile`: the Beam pipeline options that move a corpus build from this laptop to a cluster."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RunnerProfile(BaseModel):
    """A named set of Beam pipeline flags (infra/runners/*.yaml), passed to Beam unchanged."""

    model_config = ConfigDict(extra="forbid")

    options: list[str] = Field(min_length=1, description="Pipeline flags, e.g. `--runner=FlinkRunner`.")

    @field_validator("options")
    @classmethod
    def _options_are_flags(cls, options: list[str]) -> list[str]:
        for option in options:
            if not option.startswith("--"):
                raise ValueError(f"{option!r} is not a pipeline flag (flags start with --)")
        return options
