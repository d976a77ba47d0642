"""Record payloads: pickle (CPM-Bee's default) and UTF-8 JSON, and a reader that tells them apart.

Pickle payloads are written exactly as CPM-Bee writes them (`pickle.dumps`, protocol 4) and
read only as plain data (`restricted_loads`): a crafted pickle cannot run code. A
protocol-2+ pickle starts with 0x80 (PROTO); JSON text never does, so `AutoSerializer`
picks the decoder from the first payload byte.

How pickles are restricted, and why two ways. Everything in a pickle that can run code
needs a callable, and the unpickler can only get one through `find_class` (GLOBAL,
STACK_GLOBAL, INST, EXT*; persistent ids are refused when no `persistent_load` is set).
`RestrictedUnpickler` overrides `find_class`, but a `pickle.Unpickler` over a file costs
about twice `pickle.loads` per small record. So the hot path is `pickle.loads` itself,
called from `_plain_data_loads` (or a hot loop registered with `guard_pickle_loads_in`),
with an audit hook (installed once, at import) that raises on the `pickle.find_class`
event when such a function is the calling frame: the event fires before any import or attribute lookup, so nothing runs, and other
code's pickling in the process is untouched (the frame check, not a flag, so even a
finalizer that unpickles during our call is not affected). A refused pickle is then given
to `RestrictedUnpickler`, which allows the few plain-data globals old protocols use (set,
frozenset, bytearray, latin-1 bytes) and raises `UnsafePickle` for anything else. Where
audit hooks cannot be added, `RestrictedUnpickler` alone is used.

Plain data can still be hostile: memo references let a 345-byte pickle hold a list of ten
references to a list of ten references ... ("billion laughs"), or a list that contains
itself. Unpickling is quick, but whatever walks the record afterwards (printing it, JSON,
tokenizing) never ends or recurses without bound. `check_record_shape` walks each unpickled
record once, counting every container and item as often as it is reached, and refuses one
deeper than `MAX_RECORD_DEPTH` or with more than `max_record_nodes(len(payload))` nodes;
records built from JSON-like data never come near either limit.
"""

from __future__ import annotations

import io
import json
import pickle
import sys
from typing import Any, Protocol

PICKLE_PROTOCOL = 4  # the default of Python 3.8-3.13 and so of CPM-Bee's tools
PICKLE_PREFIX = b"\x80"  # the PROTO opcode


class UnsafePickle(pickle.UnpicklingError):
    """A pickle that names a class or function: plain-data readers refuse it."""


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What protocol-2 pickles call `_codecs.encode` for: bytes spelled as latin-1 text, nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickle(f"pickle calls _codecs.encode with {type(text).__name__}, {encoding!r}: refused")
    return text.encode("latin1")


# Pure constructors of plain data; older pickles (protocol 2/3) name them as globals.
_SAFE_GLOBALS = {
    ("_codecs", "encode"): _latin1_bytes,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("__builtin__", "bytearray"): bytearray,
}


class RestrictedUnpickler(pickle.Unpickler):
    """The C unpickler, allowed to build dict, list, tuple, str, bytes, int, float, bool,
    None, set, frozenset and bytearray only.

    Plain-data pickles never call `find_class`, so this is as fast as `pickle.loads`'s
    machinery; everything that could run code (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*,
    REDUCE on a looked-up callable) needs `find_class` and stops here. Persistent ids are
    refused by the C unpickler itself (no `persistent_load`).
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickle(
                f"pickle refers to {module}.{name}: only plain data (dict, list, tuple, str, bytes, "
                "int, float, bool, None, set) may be stored in a dataset"
            ) from None


class RecordTooComplex(pickle.UnpicklingError):
    """A plain-data pickle whose record is nested too deep (or contains itself) or expands,
    through shared references, far beyond its own size."""


MAX_RECORD_DEPTH = 100  # JSON-like records nest a few levels; a cycle nests forever
_MIN_RECORD_NODES = 1 << 16
_NODES_PER_PAYLOAD_BYTE = 8  # a node costs at least one opcode byte unless it is a shared reference


def max_record_nodes(payload_size: int) -> int:
    """The most containers + items a record unpickled from `payload_size` bytes may expand to."""
    return max(_MIN_RECORD_NODES, _NODES_PER_PAYLOAD_BYTE * payload_size)


_CONTAINERS = frozenset((dict, list, tuple, set, frozenset))


def check_record_shape(record: Any, payload_size: int) -> None:
    """Raise RecordTooComplex when `record` nests deeper than MAX_RECORD_DEPTH (a self-reference
    included) or expands to more than `max_record_nodes(payload_size)` containers and items."""
    kind = type(record)
    if kind is dict:  # the common record, one flat dict, is checked by C loops (map, isdisjoint)
        if _CONTAINERS.isdisjoint(map(type, record.values())) and _CONTAINERS.isdisjoint(map(type, record)):
            return
    elif kind not in _CONTAINERS:
        return
    budget = max_record_nodes(payload_size)
    if _count_nodes(record, budget, 1) > budget:
        raise RecordTooComplex(
            f"record of {payload_size} bytes expands to more than {budget:,} items through shared references "
            "(a 'billion laughs' pickle?)"
        )


def _count_nodes(obj: Any, budget: int, depth: int) -> int:
    """Items in `obj` and every container below it, each counted as often as it is reached.
    Stops counting once over `budget` (so the work is bounded); raises RecordTooComplex deeper
    than MAX_RECORD_DEPTH."""
    if depth > MAX_RECORD_DEPTH:
        raise RecordTooComplex(f"record nests deeper than {MAX_RECORD_DEPTH} levels (a container that holds itself?)")
    if type(obj) is dict:
        nodes = 2 * len(obj)  # keys and values
        children = [v for v in obj.values() if type(v) in _CONTAINERS]
        if not _CONTAINERS.isdisjoint(map(type, obj)):  # tuple / frozenset keys
            children += [k for k in obj if type(k) in _CONTAINERS]
    else:
        nodes = len(obj)
        children = [v for v in obj if type(v) in _CONTAINERS]
    for child in children:
        if nodes > budget:
            break  # the caller raises; nothing more needs counting
        nodes += _count_nodes(child, budget - nodes, depth + 1)
    return nodes


class GlobalRefused(pickle.UnpicklingError):
    """Raised by the audit hook inside `_plain_data_loads`; the pickle goes to RestrictedUnpickler."""


def _plain_data_loads(data: bytes) -> Any:
    """`pickle.loads`, in the one frame where the audit hook refuses every global."""
    return pickle.loads(data)


# Code objects of the functions whose direct `pickle.loads` calls are restricted.
_GUARDED_CODE = {_plain_data_loads.__code__}


def guard_pickle_loads_in(function: Any) -> None:
    """Restrict every `pickle.loads` that `function` itself calls to plain data (globals
    raise GlobalRefused; see the module docstring). For hot loops that cannot afford the
    extra call into `restricted_loads`; they must catch GlobalRefused and fall back to it."""
    _GUARDED_CODE.add(function.__code__)


def _refuse_globals_in_plain_data_loads(event: str, args: tuple) -> None:
    if event == "pickle.find_class" and sys._getframe(1).f_code in _GUARDED_CODE:
        raise GlobalRefused(f"pickle refers to {args[0]}.{args[1]}")


def _install_audit_hook() -> bool:
    try:
        sys.addaudithook(_refuse_globals_in_plain_data_loads)
    except Exception:  # a sandbox's own hook may refuse new hooks
        return False
    return True


FAST_PATH = _install_audit_hook()


def restricted_loads(data: bytes) -> Any:
    """Unpickle plain data (see the module docstring for how).

    Raises UnsafePickle for a global other than set/frozenset/bytearray, RecordTooComplex for
    a record that nests or expands without bound (see `check_record_shape`), and
    pickle.UnpicklingError (or EOFError, ValueError...) for bytes that are not a pickle.
    """
    record = None
    if FAST_PATH:
        try:
            record = _plain_data_loads(data)
        except GlobalRefused:
            pass  # nothing ran; let the class-checking unpickler decide
        else:
            check_record_shape(record, len(data))
            return record
    record = RestrictedUnpickler(io.BytesIO(data)).load()
    check_record_shape(record, len(data))
    return record


class Serializer(Protocol):
    """What `build_dataset` and the readers need; CPM-Bee's Serializer classes fit it too."""

    def serialize(self, obj: Any) -> bytes: ...

    def deserialize(self, data: bytes) -> Any: ...


class PickleSerializer:
    """CPM-Bee's default: `pickle.dumps(obj)` at protocol 4; read back through RestrictedUnpickler."""

    name = "pickle"

    def serialize(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=PICKLE_PROTOCOL)

    def deserialize(self, data: bytes) -> Any:
        return restricted_loads(data)


class JsonSerializer:
    """UTF-8 JSON without ASCII escapes, as CPM-Bee's `JsonSerializer` writes it."""

    name = "json"

    def serialize(self, obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")

    def deserialize(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"))


class RawSerializer:
    """Payload bytes in, payload bytes out: for copying records without decoding them."""

    name = "raw"

    def serialize(self, obj: bytes) -> bytes:
        if not isinstance(obj, (bytes, bytearray, memoryview)):
            raise TypeError(f"the raw serializer writes bytes, got {type(obj).__name__}")
        return bytes(obj)

    def deserialize(self, data: bytes) -> bytes:
        return data


class AutoSerializer:
    """Reads pickle and JSON payloads alike, choosing by the first byte; writes pickle."""

    name = "auto"

    def serialize(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=PICKLE_PROTOCOL)

    def deserialize(self, data: bytes) -> Any:
        if data[:1] == PICKLE_PREFIX:
            return restricted_loads(data)
        return json.loads(data.decode("utf-8"))


SERIALIZERS = {"pickle": PickleSerializer, "json": JsonSerializer, "raw": RawSerializer, "auto": AutoSerializer}


def get_serializer(serializer: str | Serializer | None, default: str = "auto") -> Serializer:
    """A serializer from a name (`pickle`, `json`, `raw`, `auto`), an object, or None (-> `default`).

    Raises ValueError for an unknown name.
    """
    if serializer is None:
        serializer = default
    if isinstance(serializer, str):
        try:
            return SERIALIZERS[serializer]()
        except KeyError:
            raise ValueError(f"unknown serializer {serializer!r}: expected one of {', '.join(SERIALIZERS)}") from None
    return serializer


def payload_kind(payload: bytes) -> str:
    """`pickle` or `json`, from the first byte of a payload."""
    return "pickle" if payload[:1] == PICKLE_PREFIX else "json"


def serializer_name(serializer: Serializer) -> str | None:
    """The name recorded in meta.bin for a serializer, None for one we do not know."""
    return getattr(serializer, "name", None)
