"""`diff_manifests`: what changed between two mixtures, matched by task_name.dataset_name."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.manifest.diff import diff_manifests, effective_fields
from corpus.manifest.lines import line_counts
from schemas import DatasetEntry, MixtureManifest
from manifest_fixtures import cpm_bee_manifest, entry, write_dataset

NAMES = st.sampled_from(["wiki", "news", "code", "poem", "zh.web"])
TASKS = st.sampled_from(["lm", "mlm", "qa"])
HEX = st.text("0123456789abcdef", min_size=8, max_size=64)


@st.composite
def entries(draw, with_stats=True):
    data = entry(draw(TASKS), draw(NAMES))
    if draw(st.booleans()):
        data["weight"] = draw(st.floats(0, 100, allow_nan=False))
    if draw(st.booleans()):
        data["incontext_weight"] = draw(st.lists(st.floats(0.1, 1), min_size=1, max_size=3))
    data["transforms"] = draw(st.one_of(
        st.just([]), st.just("transforms/t.py"), st.just([{"text": "$text"}]), st.just([{"a": "$b", "c": "d"}])
    ))
    if with_stats:
        for name in ("nlines", "nbytes", "ntokens"):
            if draw(st.booleans()):
                data[name] = draw(st.integers(0, 10**9))
        if draw(st.booleans()):
            data["fingerprints"] = {"content": draw(HEX), "vocab": draw(HEX)}
    return data


def manifests(with_stats=True):
    return st.lists(entries(with_stats), max_size=6, unique_by=lambda e: (e["task_name"], e["dataset_name"])).map(
        MixtureManifest.model_validate
    )


def _diff(old, new, tmp_path=None):
    return diff_manifests(old, new, line_counts(old, tmp_path), line_counts(new, tmp_path))


def _manifest(*items):
    return MixtureManifest.model_validate(list(items))


@given(manifests())
def test_a_manifest_diffed_with_itself_is_empty(manifest):
    result = _diff(manifest, manifest)
    assert result.is_empty
    assert not result.added and not result.removed and not result.changed
    assert all(d.share_delta in (None, 0.0) for d in result.datasets)


@given(manifests(), manifests())
def test_known_shares_sum_to_100_percent_on_each_side(old, new):
    result = _diff(old, new)
    for side, unknown in (("share_old", result.old_shares_unknown), ("share_new", result.new_shares_unknown)):
        values = [getattr(d, side) for d in result.datasets]
        if unknown is None and values and any(v > 0 for v in values):
            assert math.isclose(sum(values), 1.0, rel_tol=1e-9)
        if unknown is not None:
            assert all(v is None for v in values)


@given(manifests(), manifests())
def test_diff_is_antisymmetric(old, new):
    forward, backward = _diff(old, new), _diff(new, old)
    assert {d.identity for d in forward.added} == {d.identity for d in backward.removed}
    assert {d.identity for d in forward.changed} == {d.identity for d in backward.changed}
    back = {d.identity: d for d in backward.datasets}
    for d in forward.datasets:
        if d.share_delta is not None:
            assert math.isclose(d.share_delta, -back[d.identity].share_delta, abs_tol=1e-12)


@settings(max_examples=50)
@given(manifests(with_stats=False), manifests(with_stats=False))
def test_cpm_bee_manifests_without_stats_diff_with_unknown_shares(old, new):
    result = _diff(old, new)  # no folder to read meta.bin from
    if any(e.weight > 0 for e in old):
        assert result.old_shares_unknown is not None
    assert all(d.stat("nlines").delta is None for d in result.datasets)


def test_cpm_bee_manifest_shares_come_from_meta_bin_when_the_dataset_is_there(tmp_path):
    old_data = cpm_bee_manifest()
    old_data[0]["path"] = "pretrain"
    new_data = cpm_bee_manifest() + [entry("lm", "wiki", transforms=[])]
    new_data[0]["path"] = "pretrain"
    write_dataset(tmp_path / "pretrain", [300])
    write_dataset(tmp_path / "wiki", [100])
    result = _diff(MixtureManifest.model_validate(old_data), MixtureManifest.model_validate(new_data), tmp_path)
    pretrain, wiki = result.datasets
    assert (pretrain.share_old, pretrain.share_new) == (1.0, 0.75)
    assert (wiki.status, wiki.share_old, wiki.share_new) == ("added", 0.0, 0.25)
    assert pretrain.nlines_source_new == "meta.bin" and pretrain.status == "unchanged"


def test_cpm_bee_manifest_with_missing_dataset_says_unknown(tmp_path):
    manifest = MixtureManifest.model_validate(cpm_bee_manifest())
    result = _diff(manifest, manifest, tmp_path)
    assert result.is_empty
    assert result.datasets[0].share_old is None
    assert "mlm.pretrain" in result.old_shares_unknown


def test_weight_change_moves_shares_in_percentage_points():
    old = _manifest(entry("lm", "a", nlines=100), entry("lm", "b", nlines=100))
    new = _manifest(entry("lm", "a", nlines=100, weight=3.0), entry("lm", "b", nlines=100))
    a, b = _diff(old, new).datasets
    assert a.status == "changed" and b.status == "unchanged"
    assert a.change("weight").old == 1.0 and a.change("weight").new == 3.0
    assert math.isclose(a.share_delta, 0.25) and math.isclose(b.share_delta, -0.25)
    assert _diff(old, new).largest_share_movements()[0].identity in ("lm.a", "lm.b")


def test_writing_out_a_default_is_no_change():
    old = _manifest(entry("lm", "a", nlines=1))
    new = _manifest(entry("lm", "a", nlines=1, weight=1.0, incontext_weight=[1.0], transforms=[]))
    assert _diff(old, new).is_empty


def test_settings_changes_are_listed_by_field():
    old = _manifest(entry("lm", "a", nlines=1, incontext_weight=[1.0], transforms="t.py"))
    new = _manifest(entry("lm", "a", nlines=1, path="b", incontext_weight=[0.5, 0.5], transforms=[{"x": "$y"}]))
    (a,) = _diff(old, new).datasets
    assert [c.field for c in a.changes] == ["path", "incontext_weight", "transforms"]
    assert a.change("transforms").new == [{"x": "$y"}]


def test_same_weights_different_data_is_flagged():
    old = _manifest(entry("lm", "a", nlines=5, fingerprints={"content": "aa", "vocab": "v1"}))
    new = _manifest(entry("lm", "a", nlines=5, fingerprints={"content": "bb", "vocab": "v1"}))
    (a,) = _diff(old, new).datasets
    assert a.status == "changed" and a.data_changed and a.same_weights_different_data
    assert a.share_delta == 0.0


def test_vocab_fingerprint_change_is_a_data_change():
    old = _manifest(entry("lm", "a", nlines=5, fingerprints={"vocab": "v1"}))
    new = _manifest(entry("lm", "a", nlines=5, fingerprints={"vocab": "v2"}))
    assert _diff(old, new).datasets[0].same_weights_different_data


def test_count_deltas():
    old = _manifest(entry("lm", "a", nlines=5, nbytes=50, ntokens=20))
    new = _manifest(entry("lm", "a", nlines=8, nbytes=50, ntokens=30))
    result = _diff(old, new)
    (a,) = result.datasets
    assert [(s.field, s.delta) for s in a.stats] == [("nlines", 3), ("nbytes", 0), ("ntokens", 10)]
    assert a.status == "changed"
    assert result.totals["nlines"].delta == 3


def test_added_and_removed_datasets_and_order():
    old = _manifest(entry("lm", "a", nlines=1), entry("lm", "gone", nlines=1))
    new = _manifest(entry("lm", "new", nlines=2), entry("lm", "a", nlines=1))
    result = _diff(old, new)
    assert [(d.identity, d.status) for d in result.datasets] == [
        ("lm.new", "added"), ("lm.a", "unchanged"), ("lm.gone", "removed")
    ]
    gone = result.datasets[2]
    assert (gone.share_old, gone.share_new) == (0.5, 0.0)


def test_reordering_is_reported_but_changes_no_dataset():
    a, b = entry("lm", "a", nlines=1), entry("lm", "b", nlines=1)
    result = _diff(_manifest(a, b), _manifest(b, a))
    assert result.reordered and not result.is_empty
    assert all(d.status == "unchanged" for d in result.datasets)


def test_provenance_and_extra_keys_are_compared_too():
    old = _manifest(entry("lm", "a", nlines=1, provenance={"built_at": "2024-01-01"}, owner="x"))
    new = _manifest(entry("lm", "a", nlines=1, provenance={"built_at": "2024-02-01"}, owner="y"))
    (a,) = _diff(old, new).datasets
    assert [c.field for c in a.changes] == ["provenance.built_at", "owner"]


def test_effective_fields_fill_cpm_bee_defaults():
    fields = effective_fields(DatasetEntry(**entry("lm", "a")))
    assert fields == {"weight": 1.0, "path": "a", "incontext_weight": [1.0], "transforms": []}
