"""Effective shares: weight × nlines (and weight × ntokens), normalised; unknown when a count is missing."""

import math

from hypothesis import given
from hypothesis import strategies as st

from corpus.manifest.lines import LineCount
from corpus.manifest.shares import normalised_shares, sampling_shares, token_shares
from schemas import MixtureManifest
from manifest_fixtures import entry


def _manifest(*entries):
    return MixtureManifest.model_validate(list(entries))


def test_share_is_weight_times_lines_normalised():
    manifest = _manifest(entry("lm", "a", weight=1.0), entry("lm", "b", weight=2.0))
    counts = {"lm.a": LineCount(1000, "manifest"), "lm.b": LineCount(500, "manifest")}
    shares = sampling_shares(manifest, counts)
    assert shares.values == {"lm.a": 0.5, "lm.b": 0.5}


def test_token_share_is_weight_times_tokens_normalised():
    manifest = _manifest(entry("lm", "a", weight=3.0, ntokens=100), entry("lm", "b", ntokens=100))
    assert token_shares(manifest).values == {"lm.a": 0.75, "lm.b": 0.25}


def test_one_unknown_count_makes_every_share_unknown_and_says_which():
    shares = normalised_shares({"lm.a": 1.0, "lm.b": 1.0}, {"lm.a": 10, "lm.b": None}, "nlines")
    assert shares.values is None
    assert shares.get("lm.a") is None
    assert shares.why_unknown == "nlines unknown for lm.b"


def test_weight_zero_needs_no_count():
    shares = normalised_shares({"lm.a": 1.0, "lm.off": 0.0}, {"lm.a": 10, "lm.off": None}, "nlines")
    assert shares.values == {"lm.a": 1.0, "lm.off": 0.0}


def test_empty_mixture_has_unknown_shares():
    shares = normalised_shares({"lm.a": 1.0}, {"lm.a": 0}, "nlines")
    assert shares.values is None and "sums to 0" in shares.why_unknown


def test_no_datasets_is_an_empty_table_not_an_error():
    assert normalised_shares({}, {}, "nlines").values == {}


@given(st.lists(st.tuples(st.floats(0, 1e6, allow_nan=False), st.integers(0, 10**12)), min_size=1, max_size=30))
def test_known_shares_always_sum_to_100_percent(pairs):
    weights = {f"t.d{i}": weight for i, (weight, _) in enumerate(pairs)}
    amounts = {f"t.d{i}": amount for i, (_, amount) in enumerate(pairs)}
    shares = normalised_shares(weights, amounts, "nlines")
    if sum(w * a for w, a in pairs) > 0:
        assert math.isclose(sum(shares.values.values()), 1.0, rel_tol=1e-9)
        assert all(0.0 <= share <= 1.0 for share in shares.values.values())
    else:
        assert shares.values is None
