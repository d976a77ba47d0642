"""The pre-unpickling hash scan: the C sharing test agrees with pickletools, and the scan counts
what the unpickler would hash."""

from __future__ import annotations

import pickle
import pickletools

import pytest

from corpus.dataset import pickle_scan, serializer
from corpus.dataset.pickle_scan import hash_work

SHARING_OPCODES = {"GET", "BINGET", "LONG_BINGET", "DUP"}

RECORDS = [
    {"text": "北京是中国的首都。Beijing is the capital.", "id": 7, "score": 0.5, "source": "x"},
    {"input": "q", "options": {"<option_0>": "a", "<option_1>": "b"}, "<ans>": {"answer": "x"}},
    {"rows": [{"a": "", "b": "x"}] * 3},  # shared strings: BINGET
    {(1, 2): [1 << 100, -(1 << 2000), 3.5, None, True], "s": {1, "a"}, "f": frozenset({(1, 2)})},
    [b"bytes" * 100, bytearray(b"ab"), "é" * 300, "x" * 70_000],
    ((), ((),), [[]], {}),
]


SHARED_TUPLE = (1, ("a", 2))
SHARING = [{"pairs": {SHARED_TUPLE: 1}, "again": SHARED_TUPLE}, [SHARED_TUPLE] * 3]  # pickles share a tuple


compiled = pytest.mark.skipif(pickle_scan._compiled_shares_objects is None, reason="corpus.dataset._pickle_sharing not built")


@compiled
@pytest.mark.parametrize("protocol", range(6))
def test_json_like_records_are_not_scanned_even_when_pickle_shares_their_strings(protocol: int) -> None:
    for record in RECORDS[:3]:
        payload = pickle.dumps(record, protocol=protocol)
        assert pickle_scan.shares_objects(payload) is (protocol == 0), record  # protocol 0: PUT by text, scanned
    assert any(op.name == "BINGET" for op, _, _ in pickletools.genops(pickle.dumps(RECORDS[2], protocol=4)))


@compiled
@pytest.mark.parametrize("protocol", range(6))
def test_records_sharing_a_tuple_or_an_int_are_scanned(protocol: int) -> None:
    for record in SHARING:
        assert pickle_scan.shares_objects(pickle.dumps(record, protocol=protocol)) is True, record
    huge_int = b"\x8b\x00\x10\x00\x00" + b"\xff" * 4096  # LONG4: pickle never memoizes ints, a crafted one may
    assert pickle_scan.shares_objects(b"\x80\x04\x8f(" + huge_int + b"\x94h\x00h\x00\x90.") is True


@compiled
@pytest.mark.parametrize("protocol", range(6))
def test_a_pickle_the_compiled_test_clears_hashes_in_linear_time(protocol: int) -> None:
    for record in RECORDS + SHARING:
        payload = pickle.dumps(record, protocol=protocol)
        if not pickle_scan.shares_objects(payload):
            assert hash_work(payload, 1 << 40) <= len(payload)
        for cut in range(1, len(payload) - 1, max(1, len(payload) // 50)):  # truncated: cannot tell -> True
            assert pickle_scan.shares_objects(payload[:cut]) is True
    assert pickle_scan.shares_objects(b"\x80\x04\xff.") is True  # an opcode it does not know
    assert pickle_scan.shares_objects(b"\x80\x04})" + b"2\x86" * 60 + b"K\x01s.") is True  # DUP
    assert pickle_scan.shares_objects(b"\x80\x04\x8c\x01a\x94h\x00h\x01.") is True  # GET of an unset entry


def test_hash_work_counts_tuple_items_each_time_they_are_reached() -> None:
    t = (1, 2)
    assert hash_work(pickle.dumps({t: 0}, protocol=4), 100) == 3
    assert hash_work(pickle.dumps({(t, t): 0, "k": t}, protocol=4), 100) == 1 + 2 * 3 + 1
    assert hash_work(pickle.dumps({1 << 3000: 0}, protocol=4), 1000) == 1 + 3001 // 30
    assert hash_work(pickle.dumps({"a": [t] * 10}, protocol=4), 100) == 1  # nothing shared is hashed


def test_hash_work_stops_counting_past_the_limit() -> None:
    bomb = b"\x80\x04})" + b"2\x86" * 60 + b"K\x01s."
    assert 1000 < hash_work(bomb, 1000) <= 1001 + 1


@pytest.mark.parametrize("payload", [b"\x80\x04\x86.", b"\x80\x04K\x01s.", b"\x80\x04(\x90.", b"\x80\x04\xff."])
def test_hash_work_refuses_what_is_not_a_pickle(payload: bytes) -> None:
    with pytest.raises(pickle.UnpicklingError):
        hash_work(payload, 100)


def test_without_the_compiled_module_every_pickle_is_scanned_with_the_same_results(monkeypatch) -> None:
    monkeypatch.setattr(serializer, "shares_objects", pickle_scan._always_shares)
    for record in RECORDS:
        assert serializer.PlainDataUnpickler().loads(pickle.dumps(record, protocol=4)) == record
    with pytest.raises(serializer.RecordTooComplex, match="hash more than"):
        serializer.restricted_loads(b"\x80\x04})" + b"2\x86" * 60 + b"K\x01s.")
