"""Token statistics of tokenized data: what a manifest entry says about a dataset in tokens.

Counts are summed per shard (`TokenCounts`, mergeable); length percentiles need every length,
so `TokenStats` is made from the merged counts plus the per-record lengths of all shards.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from schemas.special_tokens import is_special


class TokenCounts(BaseModel):
    """Additive counts over the records of one shard (or many, summed with `+`)."""

    model_config = ConfigDict(extra="forbid")

    nrecords: int = Field(default=0, ge=0, description="Records tokenized.")
    nrejected: int = Field(default=0, ge=0, description="Records that could not be converted (see the rejects file).")
    ntokens: int = Field(default=0, ge=0, description="Tokens over all records, with the <s>/</s> of every segment.")
    unk_tokens: int = Field(default=0, ge=0, description="Tokens that are `<unk>`: runs of characters the vocabulary lacks.")
    ext_entries: int = Field(default=0, ge=0, description="Ext-table entries over all records (each record has its own table).")
    ext_special_entries: int = Field(default=0, ge=0, description="Of those, special tokens missing from the vocabulary (`<option_3>`).")
    records_with_ext: int = Field(default=0, ge=0, description="Records whose ext table is not empty.")
    source_bytes: int = Field(default=0, ge=0, description="Bytes of the data files read (meta.bin `nbytes`).")

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(**{name: getattr(self, name) + getattr(other, name) for name in TokenCounts.model_fields})

    def add_record(self, ids: NDArray[np.int32], ext_table: dict[int, str], unk_id: int) -> None:
        """Count one converted record."""
        self.nrecords += 1
        self.ntokens += int(ids.shape[0])
        self.unk_tokens += int(np.count_nonzero(ids == unk_id))
        if ext_table:
            self.records_with_ext += 1
            self.ext_entries += len(ext_table)
            self.ext_special_entries += sum(1 for token in ext_table.values() if is_special(token))


class LengthPercentiles(BaseModel):
    """Record lengths in tokens."""

    model_config = ConfigDict(extra="forbid")

    min: int = 0
    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    max: int = 0
    mean: float = 0.0


class TokenStats(TokenCounts):
    """Token statistics of a dataset: the summed counts, rates and length percentiles."""

    unk_rate: float = Field(default=0.0, ge=0, description="unk_tokens / ntokens.")
    ext_record_rate: float = Field(default=0.0, ge=0, description="records_with_ext / nrecords.")
    length: LengthPercentiles = Field(default_factory=LengthPercentiles)

    @classmethod
    def from_counts(cls, counts: TokenCounts, lengths: NDArray[np.integer]) -> TokenStats:
        """Stats from summed counts and every record's length (`len(lengths) == counts.nrecords`).

        Raises ValueError when they disagree (a shard and its counts out of step).
        """
        if len(lengths) != counts.nrecords or int(np.sum(lengths, dtype=np.int64)) != counts.ntokens:
            raise ValueError(
                f"lengths ({len(lengths)} records, {int(np.sum(lengths, dtype=np.int64))} tokens) disagree with "
                f"counts ({counts.nrecords} records, {counts.ntokens} tokens)"
            )
        length = LengthPercentiles()
        if len(lengths):
            p50, p90, p99 = np.percentile(lengths, [50, 90, 99])
            length = LengthPercentiles(
                min=int(lengths.min()), p50=round(float(p50), 3), p90=round(float(p90), 3), p99=round(float(p99), 3),
                max=int(lengths.max()), mean=round(float(lengths.mean()), 3),
            )
        return cls(
            **counts.model_dump(),
            unk_rate=round(counts.unk_tokens / counts.ntokens, 6) if counts.ntokens else 0.0,
            ext_record_rate=round(counts.records_with_ext / counts.nrecords, 6) if counts.nrecords else 0.0,
            length=length,
        )
