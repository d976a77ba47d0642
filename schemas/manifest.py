"""`MixtureManifest`: CPM-Bee's `datasets.json`, a weighted list of datasets, plus our stats fields."""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

# A transform is either a path to a `transform.py` or a list of `$field` mappings.
Transforms = str | list[dict[str, Any]]


class Fingerprints(BaseModel):
    """Content hashes that tell "same weights, different data" apart."""

    model_config = ConfigDict(extra="allow")

    content: str | None = Field(default=None, description="sha256 over the dataset's data files and meta.bin.")
    vocab: str | None = Field(default=None, description="sha256 of the vocabulary its token counts were made with.")


class Provenance(BaseModel):
    """Where a dataset came from and what built it."""

    model_config = ConfigDict(extra="allow")

    build_config: str | None = Field(default=None, description="Path of the build config that produced it.")
    inputs: list[str] = Field(default_factory=list, description="Input roots of the build.")
    built_at: str | None = Field(default=None, description="ISO-8601 time of the build.")
    tool_version: str | None = Field(default=None, description="Version of this toolchain.")


class DatasetEntry(BaseModel):
    """One dataset of a mixture. Identity is `task_name.dataset_name`, as in CPM-Bee.

    Defaults are CPM-Bee's loader defaults, and fields that were absent in the file
    stay absent when it is written back, so a CPM-Bee manifest round-trips unchanged.
    """

    model_config = ConfigDict(extra="allow")

    dataset_name: str = Field(min_length=1)
    task_name: str = Field(min_length=1)
    weight: float = Field(
        default=1.0, ge=0, allow_inf_nan=False,
        description="Sampling weight (finite; 0 = never sampled); probability is weight x nlines, normalised.",
    )  # fmt: skip
    path: str = Field(min_length=1, description="Dataset folder (with meta.bin), relative to the manifest.")
    incontext_weight: list[float] = Field(
        default_factory=lambda: [1.0],
        description="Weights of drawing 0, 1, 2, ... in-context samples.",
    )
    transforms: Transforms = Field(default_factory=list)
    escaped: bool | None = Field(default=None, description="True when `<` was escaped as `<<` at build time.")
    nlines: int | None = Field(default=None, ge=0)
    nbytes: int | None = Field(default=None, ge=0)
    ntokens: int | None = Field(default=None, ge=0)
    fingerprints: Fingerprints | None = None
    provenance: Provenance | None = None

    @field_validator("incontext_weight")
    @classmethod
    def _incontext_weight_has_mass(cls, value: list[float]) -> list[float]:
        if not value or any(not math.isfinite(w) or w < 0 for w in value) or sum(value) <= 0:
            raise ValueError("must be a non-empty list of finite, non-negative numbers with a positive sum")
        return value

    @property
    def identity(self) -> str:
        return f"{self.task_name}.{self.dataset_name}"


class MixtureManifest(RootModel[list[DatasetEntry]]):
    """The whole `datasets.json`: a JSON list of `DatasetEntry`."""

    @field_validator("root")
    @classmethod
    def _identities_are_unique(cls, entries: list[DatasetEntry]) -> list[DatasetEntry]:
        seen: set[str] = set()
        for entry in entries:
            if entry.identity in seen:
                raise ValueError(f"dataset {entry.identity!r} appears twice")
            seen.add(entry.identity)
        return entries

    def __iter__(self):
        return iter(self.root)

    def __len__(self) -> int:
        return len(self.root)

    def to_json(self) -> str:
        """The manifest as CPM-Bee's loader reads it: only fields that were set, in a stable order."""
        entries = [entry.model_dump(mode="json", exclude_unset=True) for entry in self.root]
        return json.dumps(entries, ensure_ascii=False, indent=4) + "\n"
