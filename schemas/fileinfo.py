"""`FileInfo`: one line of a CPM-Bee dataset's `meta.bin`, describing one data file."""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_BLOCK_SIZE = 16 << 20  # 16 MiB: a record may not cross a block
# 1 GiB: readers hold a whole block in memory; CPM-Bee's own datasets use 16 MiB
MAX_BLOCK_SIZE = 1 << 30


def file_name_problem(name: str) -> str | None:
    """Why `name` is not a plain file name inside a dataset folder (a path separator, `.`/`..`,
    a NUL byte, empty), or None when it is one. Every reader, verifier and merger of a
    meta.bin relies on this: a name may never lead outside the dataset folder."""
    if not name:
        return "empty"
    if name in (".", ".."):
        return f"{name!r} is a folder, not a file"
    for bad, what in (("/", "a path separator '/'"), ("\\", "a path separator '\\'"), ("\0", "a NUL byte")):
        if bad in name:
            return f"contains {what}"
    return None


class FileInfo(BaseModel):
    """One data file of a dataset: its block range and counts.

    The seven fields are CPM-Bee's; unknown keys (checksums, format version,
    provenance) are kept and written back, and CPM-Bee's reader ignores them.
    """

    model_config = ConfigDict(extra="allow")

    file_name: str = Field(min_length=1, description="Data file name, relative to the dataset folder.")
    block_begin: int = Field(ge=0, description="First global block id of this file.")
    block_end: int = Field(ge=0, description="One past the last global block id of this file.")
    nbytes: int = Field(ge=0, description="Sum over records of 4 + payload length, in bytes.")
    nlines: int = Field(ge=0, description="Number of records.")
    mask: bool = Field(default=False, description="Masked files are skipped by readers.")
    block_size: int = Field(default=DEFAULT_BLOCK_SIZE, gt=6, le=MAX_BLOCK_SIZE, description="Block size in bytes.")

    @field_validator("file_name")
    @classmethod
    def _plain_file_name(cls, name: str) -> str:
        problem = file_name_problem(name)
        if problem is not None:
            raise ValueError(f"{name!r} is not a plain file name inside the dataset folder: {problem}")
        return name

    @model_validator(mode="after")
    def _block_range_is_ordered(self) -> FileInfo:
        if self.block_end < self.block_begin:
            raise ValueError(f"block_end ({self.block_end}) is before block_begin ({self.block_begin})")
        return self

    @property
    def nblocks(self) -> int:
        return self.block_end - self.block_begin

    @property
    def extra_keys(self) -> dict:
        return dict(self.model_extra or {})

    def to_line(self) -> str:
        """The `meta.bin` line, byte-identical to CPM-Bee's `FileInfo.dumps()` when there are no extras."""
        return json.dumps(self.model_dump())
