"""`Record` and `Reject`: the one record type that flows through every corpus stage, and what a
stage hands back when it drops one. Their Arrow schemas (the Parquet shards) are defined here too.

A record is like datatrove's `Document`: its text, where it came from, and what the stages
learnt about it (quality scores, hashes, duplicate cluster). Its input position
`(source_path, source_line, piece)` orders every output of a build.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

RecordKind = Literal["text", "json"]


class Record(BaseModel):
    """One sample on its way through the pipeline."""

    model_config = ConfigDict(extra="forbid")

    source_path: str = Field(description="Input file, relative to its input root (e.g. `txt/part-000.txt`).")
    source_line: int = Field(ge=1, description="1-based line number in the (decompressed) input file.")
    piece: int = Field(default=0, ge=0, description="Index of the piece when a long txt line was split; 0 otherwise.")
    kind: RecordKind = Field(
        description="`text` for a text document (a txt line, or a JSON record with a text field and no `<ans>`), "
                    "`json` for a structured sample (a JSON record with `<ans>`, or one left to the build's transforms).")
    text: str = Field(description="The document text; for json samples, the string values joined by newlines.")
    data: dict[str, Any] | None = Field(default=None, description="The json object (json samples only).")
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="A JSON document's other fields (any JSON type), written beside `text`: `{\"text\": ..., **metadata}`.")
    raw_chars: int = Field(default=0, ge=0, description="Length in characters as read, before cleaning.")
    quality: dict[str, float] = Field(default_factory=dict, description="Quality scores by metric name.")
    language: str | None = Field(default=None, description="Main language (cld2 code, e.g. `zh`, `en`, `un` unknown) when language identification ran.")
    language_score: float | None = Field(default=None, description="Share of the identified text in the main language (0-1).")
    pii: dict[str, int] = Field(default_factory=dict, description="PII found and redacted, count by type (e.g. `email`).")
    content_hash: str | None = Field(default=None, description="Hash of the normalised text (exact dedupe key).")
    minhash: bytes | None = Field(default=None, description="MinHash signature, little-endian uint64 values.")
    cluster_size: int = Field(default=1, ge=1, description="Size of the near-duplicate cluster this record kept.")
    payload: dict[str, Any] | None = Field(default=None, description="The escaped object written to the dataset.")

    @property
    def position(self) -> tuple[str, int, int]:
        """Sort key of input order; the earliest position wins every tie."""
        return (self.source_path, self.source_line, self.piece)


class Reject(BaseModel):
    """A dropped record or an unreadable input: where, which stage, why, and the evidence."""

    model_config = ConfigDict(extra="forbid")

    source_path: str
    source_line: int = Field(ge=0, description="1-based line; 0 when the whole file is rejected.")
    piece: int = Field(default=0, ge=0)
    stage: str = Field(description="Stage that dropped it: read, clean, split, quality, exact_dedupe, ...")
    reason: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="snake_case reason, e.g. `too_few_tokens`.")
    score: float | None = Field(default=None, description="The measured value that failed the filter.")
    threshold: float | None = Field(default=None, description="The bound it failed.")
    duplicate_of: str | None = Field(default=None, description="`source_path:source_line` of the kept copy.")
    detail: str = Field(default="", description="Human-readable explanation (error message, position).")
    text: str = Field(default="", description="The rejected text (truncated), to inspect the decision.")
    raw_chars: int | None = Field(default=None, ge=0, description="Length as read, when a text was read.")

    @property
    def position(self) -> tuple[str, int, int]:
        return (self.source_path, self.source_line, self.piece)


# Parquet layout of kept records (and of the per-input-file checkpoint of the first stages).
RECORD_ARROW_SCHEMA = pa.schema(
    [
        pa.field("source_path", pa.string(), nullable=False),
        pa.field("source_line", pa.int64(), nullable=False),
        pa.field("piece", pa.int32(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("data_json", pa.large_string()),
        pa.field("metadata_json", pa.large_string()),
        pa.field("raw_chars", pa.int64(), nullable=False),
        pa.field("chars", pa.int64(), nullable=False),
        pa.field("quality", pa.map_(pa.string(), pa.float64())),
        pa.field("language", pa.string()),
        pa.field("language_score", pa.float64()),
        pa.field("pii", pa.map_(pa.string(), pa.int64())),
        pa.field("content_hash", pa.string()),
        pa.field("minhash", pa.binary()),
        pa.field("cluster_size", pa.int32(), nullable=False),
        pa.field("payload_json", pa.large_string()),
    ]
)

REJECT_ARROW_SCHEMA = pa.schema(
    [
        pa.field("source_path", pa.string(), nullable=False),
        pa.field("source_line", pa.int64(), nullable=False),
        pa.field("piece", pa.int32(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("threshold", pa.float64()),
        pa.field("duplicate_of", pa.string()),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("raw_chars", pa.int64()),
    ]
)


def _dumps(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, ensure_ascii=False, sort_keys=False)


def record_to_row(record: Record) -> dict[str, Any]:
    """A `Record` as a row of `RECORD_ARROW_SCHEMA` (json objects as JSON text, key order kept)."""
    return {
        "source_path": record.source_path,
        "source_line": record.source_line,
        "piece": record.piece,
        "kind": record.kind,
        "text": record.text,
        "data_json": _dumps(record.data),
        "metadata_json": _dumps(record.metadata),
        "raw_chars": record.raw_chars,
        "chars": len(record.text),
        "quality": sorted(record.quality.items()),
        "language": record.language,
        "language_score": record.language_score,
        "pii": sorted(record.pii.items()),
        "content_hash": record.content_hash,
        "minhash": record.minhash,
        "cluster_size": record.cluster_size,
        "payload_json": _dumps(record.payload),
    }


def record_from_row(row: dict[str, Any]) -> Record:
    """Inverse of `record_to_row`."""
    return Record(
        source_path=row["source_path"],
        source_line=row["source_line"],
        piece=row["piece"],
        kind=row["kind"],
        text=row["text"],
        data=None if row["data_json"] is None else json.loads(row["data_json"]),
        metadata=None if row.get("metadata_json") is None else json.loads(row["metadata_json"]),
        raw_chars=row["raw_chars"],
        quality=dict(row["quality"] or []),
        language=row.get("language"),
        language_score=row.get("language_score"),
        pii=dict(row.get("pii") or []),
        content_hash=row["content_hash"],
        minhash=row["minhash"],
        cluster_size=row["cluster_size"],
        payload=None if row["payload_json"] is None else json.loads(row["payload_json"]),
    )


def reject_to_row(reject: Reject) -> dict[str, Any]:
    """A `Reject` as a row of `REJECT_ARROW_SCHEMA`."""
    return reject.model_dump()


def reject_from_row(row: dict[str, Any]) -> Reject:
    """Inverse of `reject_to_row`."""
    return Reject.model_validate(row)
