"""The difference between two mixture manifests, as a reviewer needs it: a pure function
`diff_manifests(old, new, old_lines, new_lines) -> ManifestDiff` and the typed result.

Datasets are matched by identity (`task_name.dataset_name`, as in CPM-Bee). Settings are
compared by their effective values (a missing `weight` is CPM-Bee's default 1.0, so writing
it out is no change); effective sampling shares are compared in percentage points.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from corpus.manifest.lines import LineCount, LineSource
from corpus.manifest.shares import Shares, sampling_shares, token_shares
from schemas import DatasetEntry, MixtureManifest

Status = Literal["added", "removed", "changed", "unchanged"]

# Stats compared as numbers with a delta; everything else is compared as a setting.
STAT_FIELDS = ("nlines", "nbytes", "ntokens")
_IDENTITY_FIELDS = ("dataset_name", "task_name")
# Fields with a non-None default: absent means the default, as CPM-Bee's loader fills it in.
_DEFAULTED_FIELDS = ("weight", "incontext_weight", "transforms")
_DATA_FINGERPRINTS = ("fingerprints.content", "fingerprints.vocab")


@dataclass(frozen=True)
class FieldChange:
    """One setting that differs: `field` is dotted for nested keys (`fingerprints.content`)."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class StatDelta:
    """A count (`nlines`, `nbytes`, `ntokens`) before and after; None means unknown or absent."""

    field: str
    old: int | None
    new: int | None

    @property
    def delta(self) -> int | None:
        return None if self.old is None or self.new is None else self.new - self.old

    @property
    def changed(self) -> bool:
        return self.old != self.new


@dataclass(frozen=True)
class DatasetDiff:
    """How one dataset differs. Shares are fractions (0..1); an absent side has share 0 when
    that manifest's shares are known, None when they are not."""

    identity: str
    status: Status
    changes: tuple[FieldChange, ...] = ()
    stats: tuple[StatDelta, ...] = ()
    share_old: float | None = None
    share_new: float | None = None
    token_share_old: float | None = None
    token_share_new: float | None = None
    nlines_source_old: LineSource | None = None
    nlines_source_new: LineSource | None = None

    @property
    def share_delta(self) -> float | None:
        """Change of the sampling share (a fraction; × 100 for percentage points)."""
        if self.share_old is None or self.share_new is None:
            return None
        return self.share_new - self.share_old

    @property
    def token_share_delta(self) -> float | None:
        if self.token_share_old is None or self.token_share_new is None:
            return None
        return self.token_share_new - self.token_share_old

    def change(self, name: str) -> FieldChange | None:
        return next((change for change in self.changes if change.field == name), None)

    def stat(self, name: str) -> StatDelta | None:
        return next((stat for stat in self.stats if stat.field == name), None)

    @property
    def data_changed(self) -> bool:
        """The content or vocabulary fingerprint changed: the data is not what it was."""
        return any(self.change(name) is not None for name in _DATA_FINGERPRINTS)

    @property
    def same_weights_different_data(self) -> bool:
        """The trap a reviewer must not miss: the weight is untouched but the data behind it changed."""
        return self.status == "changed" and self.data_changed and self.change("weight") is None


@dataclass(frozen=True)
class ManifestDiff:
    """Every dataset of either manifest (new order first, then removed ones in old order)."""

    datasets: tuple[DatasetDiff, ...]
    old_label: str = "old"
    new_label: str = "new"
    old_shares_unknown: str | None = None
    new_shares_unknown: str | None = None
    old_token_shares_unknown: str | None = None
    new_token_shares_unknown: str | None = None
    reordered: bool = False
    totals: dict[str, StatDelta] = field(default_factory=dict)

    def with_status(self, status: Status) -> list[DatasetDiff]:
        return [dataset for dataset in self.datasets if dataset.status == status]

    @property
    def added(self) -> list[DatasetDiff]:
        return self.with_status("added")

    @property
    def removed(self) -> list[DatasetDiff]:
        return self.with_status("removed")

    @property
    def changed(self) -> list[DatasetDiff]:
        return self.with_status("changed")

    @property
    def is_empty(self) -> bool:
        """True when the trainer would see the same mixture (formatting and key order aside)."""
        return not self.reordered and all(dataset.status == "unchanged" for dataset in self.datasets)

    @property
    def shares_known(self) -> bool:
        return self.old_shares_unknown is None and self.new_shares_unknown is None

    @property
    def token_shares_known(self) -> bool:
        return self.old_token_shares_unknown is None and self.new_token_shares_unknown is None

    def largest_share_movements(self, limit: int = 3, minimum: float = 5e-5) -> list[DatasetDiff]:
        """The datasets whose sampling share moved most (at least `minimum`, a fraction), biggest first."""
        moved = [d for d in self.datasets if d.share_delta is not None and abs(d.share_delta) >= minimum]
        moved.sort(key=lambda d: (-abs(d.share_delta), d.identity))
        return moved[:limit]


def effective_fields(entry: DatasetEntry) -> dict[str, Any]:
    """The entry's settings as the trainer sees them, flattened to dotted keys, stats and
    identity left out. Defaults count as set; absent optional fields are left out."""
    explicit = entry.model_dump(mode="json", exclude_defaults=True)
    everything = entry.model_dump(mode="json")
    # Schema order (then extras), whether a field was written out or left to its default.
    data = {
        name: explicit[name] if name in explicit else value
        for name, value in everything.items()
        if name in explicit or name in _DEFAULTED_FIELDS
    }
    flat: dict[str, Any] = {}
    _flatten(data, "", flat)
    for name in (*_IDENTITY_FIELDS, *STAT_FIELDS):
        flat.pop(name, None)
    return flat


def _flatten(value: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            _flatten(item, f"{name}.", out)
        elif item is not None and item != {}:
            out[name] = item


def _field_changes(old: DatasetEntry, new: DatasetEntry) -> tuple[FieldChange, ...]:
    old_fields, new_fields = effective_fields(old), effective_fields(new)
    names = list(old_fields) + [name for name in new_fields if name not in old_fields]
    return tuple(
        FieldChange(name, old_fields.get(name), new_fields.get(name))
        for name in names
        if old_fields.get(name) != new_fields.get(name)
    )


def _stats(old: DatasetEntry | None, new: DatasetEntry | None, old_lines: LineCount | None,
           new_lines: LineCount | None) -> tuple[StatDelta, ...]:
    return (
        StatDelta("nlines", old_lines.nlines if old_lines else None, new_lines.nlines if new_lines else None),
        StatDelta("nbytes", old.nbytes if old else None, new.nbytes if new else None),
        StatDelta("ntokens", old.ntokens if old else None, new.ntokens if new else None),
    )


def _absent_share(shares: Shares) -> float | None:
    # A dataset missing from a manifest whose shares are known has share 0 there.
    return None if shares.values is None else 0.0


def _total(entries: list[StatDelta | None], side: str) -> int | None:
    values = [getattr(stat, side) for stat in entries if stat is not None]
    return None if any(value is None for value in values) else sum(values)


def diff_manifests(
    old: MixtureManifest,
    new: MixtureManifest,
    old_lines: Mapping[str, LineCount],
    new_lines: Mapping[str, LineCount],
    old_label: str = "old",
    new_label: str = "new",
) -> ManifestDiff:
    """Compare two manifests.

    Takes both manifests and their line counts keyed by identity (see `lines.line_counts`;
    a missing key means unknown). Returns the typed `ManifestDiff`. Raises nothing for
    well-formed manifests: unknown line counts make shares unknown, never an error.
    """
    unknown = LineCount(None, "unknown", "no line count given")
    old_by_id = {entry.identity: entry for entry in old}
    new_by_id = {entry.identity: entry for entry in new}
    old_counts = {identity: old_lines.get(identity, unknown) for identity in old_by_id}
    new_counts = {identity: new_lines.get(identity, unknown) for identity in new_by_id}
    old_shares, new_shares = sampling_shares(old, old_counts), sampling_shares(new, new_counts)
    old_tokens, new_tokens = token_shares(old), token_shares(new)

    order = list(new_by_id) + [identity for identity in old_by_id if identity not in new_by_id]
    datasets = []
    for identity in order:
        before, after = old_by_id.get(identity), new_by_id.get(identity)
        stats = _stats(before, after, old_counts.get(identity), new_counts.get(identity))
        if before is None:
            status, changes = "added", ()
        elif after is None:
            status, changes = "removed", ()
        else:
            changes = _field_changes(before, after)
            status = "changed" if changes or any(stat.changed for stat in stats) else "unchanged"
        datasets.append(DatasetDiff(
            identity=identity,
            status=status,
            changes=changes,
            stats=stats,
            share_old=old_shares.get(identity) if before else _absent_share(old_shares),
            share_new=new_shares.get(identity) if after else _absent_share(new_shares),
            token_share_old=old_tokens.get(identity) if before else _absent_share(old_tokens),
            token_share_new=new_tokens.get(identity) if after else _absent_share(new_tokens),
            nlines_source_old=old_counts[identity].source if before else None,
            nlines_source_new=new_counts[identity].source if after else None,
        ))

    common_old = [identity for identity in old_by_id if identity in new_by_id]
    common_new = [identity for identity in new_by_id if identity in old_by_id]
    totals = {}
    for name in STAT_FIELDS:
        stats = [dataset.stat(name) for dataset in datasets]
        totals[name] = StatDelta(
            name,
            _total([s for s, d in zip(stats, datasets) if d.status != "added"], "old"),
            _total([s for s, d in zip(stats, datasets) if d.status != "removed"], "new"),
        )
    return ManifestDiff(
        datasets=tuple(datasets),
        old_label=old_label,
        new_label=new_label,
        old_shares_unknown=old_shares.why_unknown,
        new_shares_unknown=new_shares.why_unknown,
        old_token_shares_unknown=old_tokens.why_unknown,
        new_token_shares_unknown=new_tokens.why_unknown,
        reordered=common_old != common_new,
        totals=totals,
    )
