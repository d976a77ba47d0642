"""Payload serializers: CPM-Bee's bytes, and a pickle reader that runs nothing."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.dataset import JsonSerializer, PickleSerializer, PlainDataUnpickler, RestrictedUnpickler, UnsafePickle
from corpus.dataset.serializer import AutoSerializer, get_serializer

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=4)
    | st.tuples(children, children)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(plain)
@settings(max_examples=200, deadline=None)
def test_pickle_payload_is_byte_identical_to_cpm_bee_and_reads_back(record):
    payload = PickleSerializer().serialize(record)
    assert payload == pickle.dumps(record)  # CPM-Bee's PickleSerializer: pickle.dumps(obj)
    assert payload[0] == 0x80
    assert PickleSerializer().deserialize(payload) == record
    assert AutoSerializer().deserialize(payload) == record


def test_json_payload_is_utf8_without_ascii_escapes():
    record = {"text": "北京 <b>", "n": 1}
    payload = JsonSerializer().serialize(record)
    assert payload == json.dumps(record, ensure_ascii=False).encode("utf-8")
    assert "北京".encode() in payload
    assert AutoSerializer().deserialize(payload) == record


def test_sets_and_old_protocols_of_plain_data_load(decode_path):
    record = {"s": {1, 2}, "f": frozenset({"a"}), "b": bytearray(b"xy")}
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        assert decode_path(pickle.dumps(record, protocol=protocol)) == record


class _WritesFile:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class _OpensFile:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(params=["audit-hook fast path", "RestrictedUnpickler only"])
def decode_path(request):
    """Both ways plain data is unpickled: pickle.loads under the audit hook, or the class
    (`restricted_loads`); the `loads` of each."""
    unpickler = PlainDataUnpickler(fast=request.param == "audit-hook fast path")
    if request.param == "audit-hook fast path":
        assert unpickler.fast, "the audit hook could not be installed here"
    return unpickler.loads


@pytest.mark.parametrize("payload_class", [_WritesFile, _OpensFile])
def test_crafted_pickle_raises_and_runs_nothing(tmp_path: Path, payload_class, decode_path):
    target = tmp_path / "pwned"
    crafted = pickle.dumps(payload_class(str(target)))
    with pytest.raises(UnsafePickle, match=r"(posix|os|builtins|io)\.(system|open)"):
        decode_path(crafted)
    with pytest.raises(UnsafePickle):
        AutoSerializer().deserialize(crafted)
    assert not target.exists()
    pickle.loads(crafted)  # the unrestricted reader would have run it: the test can fail
    assert target.exists()


def test_classes_are_refused_even_harmless_ones(decode_path):
    with pytest.raises(UnsafePickle, match="collections.OrderedDict"):
        decode_path(pickle.dumps(__import__("collections").OrderedDict(a=1)))


def test_persistent_ids_are_refused():
    class Persisting(pickle.Pickler):
        def persistent_id(self, obj):
            return "x" if obj == "secret" else None

    import io

    buffer = io.BytesIO()
    Persisting(buffer).dump(["secret"])
    with pytest.raises(pickle.UnpicklingError):
        RestrictedUnpickler(io.BytesIO(buffer.getvalue())).load()


def test_unknown_serializer_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown serializer 'yaml'"):
        get_serializer("yaml")


def test_the_audit_hook_leaves_other_unpickling_alone():
    import collections

    assert PlainDataUnpickler().loads(pickle.dumps({"warm": "up"})) == {"warm": "up"}  # the hook is installed
    # pickle.loads called from anywhere but the guarded frames still resolves classes
    assert pickle.loads(pickle.dumps(collections.OrderedDict(a=1))) == collections.OrderedDict(a=1)
    assert pickle.loads(pickle.dumps(Path("/x"))) == Path("/x")


def test_protocol_2_bytes_are_allowed_but_only_as_latin1(decode_path):
    assert decode_path(pickle.dumps(b"\x00\xff", protocol=2)) == b"\x00\xff"
    crafted = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R."
    with pytest.raises(UnsafePickle, match="_codecs.encode with str, 'zlib'"):
        decode_path(crafted)
