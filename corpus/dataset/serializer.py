"""Record payloads: pickle (CPM-Bee's default) and UTF-8 JSON, and a reader that tells them apart.

Pickle payloads are written exactly as CPM-Bee writes them (`pickle.dumps`, protocol 4) and
read only as plain data (`restricted_loads`): a crafted pickle cannot run code. A
protocol-2+ pickle starts with 0x80 (PROTO); JSON text never does, so `AutoSerializer`
picks the decoder from the first payload byte.

How pickles are restricted, and why two ways. Everything in a pickle that can run code
needs a callable, and the unpickler can only get one through `find_class` (GLOBAL,
STACK_GLOBAL, INST, EXT*; persistent ids are refused when no `persistent_load` is set).
`RestrictedUnpickler` overrides `find_class`, and `restricted_loads` uses it with no set-up;
but a `pickle.Unpickler` over a file costs about twice `pickle.loads` per small record. So
the readers of many records (`PlainDataUnpickler`, which the serializers hold, and
`DistributedDataset.read`) set up a fast path when they are made: they call `pickle.loads`
themselves, and `guard_pickle_loads_in` restricts that. Its first call in a process installs
an audit hook (nothing is installed at import) that raises on the `pickle.find_class` event
when a registered function is the calling frame: the event fires before any import or
attribute lookup, so nothing runs, and other code's pickling in the process is untouched
(the frame check, not a flag, so even a finalizer that unpickles during our call is not
affected). A refused pickle is then given to `RestrictedUnpickler`, which allows the few
plain-data globals old protocols use (set, frozenset, bytearray, latin-1 bytes) and raises
`UnsafePickle` for anything else. Where audit hooks cannot be added, `RestrictedUnpickler`
alone is used. An audit hook belongs to its process: a fast reader pickled into another
process sets its path up again there when it is unpickled.

Plain data can still be hostile: memo references let a 345-byte pickle hold a list of ten
references to a list of ten references ... ("billion laughs"), or a list that contains
itself. Unpickling is quick, but whatever walks the record afterwards (printing it, JSON,
tokenizing) never ends or recurses without bound. `check_record_shape` walks each unpickled
record once, counting every container and item as often as it is reached, and refuses one
deeper than `MAX_RECORD_DEPTH` or with more than `max_record_nodes(len(payload))` nodes;
records built from JSON-like data never come near either limit.

Some of that work is done inside the unpickler, before any check of the record can run: it
hashes every dict key and set member it inserts, and hashing a tuple hashes its items, so a
tuple shared through the memo or DUP (t1 = (t0, t0) ... t60) as a dict key hangs
`pickle.loads` itself (a ~130-byte "hash bomb"). `check_pickle_hashing` runs before every
unpickling: a C walk over the opcodes (`pickle_scan.shares_objects`) clears a pickle that
shares no tuple or int (JSON-like records share only strs); only the others are scanned in
Python (`pickle_scan.hash_work`), and refused when their hashing would exceed
`max_record_nodes`. Sets of old protocols, built by calling `set` from REDUCE, are bounded
the same way as they are built.
"""

from __future__ import annotations

import io
import json
import pickle
import sys
import threading
from typing import Any, Protocol

from corpus.dataset.pickle_scan import hash_work, shares_objects

PICKLE_PROTOCOL = 4  # the default of Python 3.8-3.13 and so of CPM-Bee's tools
PICKLE_PREFIX = b"\x80"  # the PROTO opcode


class UnsafePickle(pickle.UnpicklingError):
    """A pickle that names a class or function: plain-data readers refuse it."""


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What protocol-2 pickles call `_codecs.encode` for: bytes spelled as latin-1 text, nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickle(f"pickle calls _codecs.encode with {type(text).__name__}, {encoding!r}: refused")
    return text.encode("latin1")


def _plain_bytearray(source: Any = b"", *args: Any) -> bytearray:
    """`bytearray` as protocol-2/3 pickles call it (from bytes or latin-1 text); never from an int,
    which would allocate that many bytes."""
    if isinstance(source, int):
        raise UnsafePickle(f"pickle calls bytearray({source}): only bytes or text may be given")
    return bytearray(source, *args)


# Pure constructors of plain data; older pickles (protocol 2/3) name them as globals. set and
# frozenset are built by `RestrictedUnpickler._new_set`, which bounds the hashing.
_SAFE_GLOBALS = {
    ("_codecs", "encode"): _latin1_bytes,
    ("builtins", "bytearray"): _plain_bytearray,
    ("__builtin__", "bytearray"): _plain_bytearray,
}
_SET_GLOBALS = {
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
}


class RestrictedUnpickler(pickle.Unpickler):
    """The C unpickler, allowed to build dict, list, tuple, str, bytes, int, float, bool,
    None, set, frozenset and bytearray only.

    Plain-data pickles never call `find_class`, so this is as fast as `pickle.loads`'s
    machinery; everything that could run code (GLOBAL, STACK_GLOBAL, INST, OBJ, EXT*,
    REDUCE on a looked-up callable) needs `find_class` and stops here. Persistent ids are
    refused by the C unpickler itself (no `persistent_load`). Sets built by REDUCE may hash at
    most `hash_budget` tuple items and int digits in all (see `check_pickle_hashing`).
    """

    hash_budget = 1 << 16  # `_MIN_RECORD_NODES`; restricted_loads sets it per pickle (no __init__: it costs per record)

    def find_class(self, module: str, name: str) -> Any:
        kind = _SET_GLOBALS.get((module, name))
        if kind is not None:
            return lambda iterable=(): self._new_set(kind, iterable)
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickle(
                f"pickle refers to {module}.{name}: only plain data (dict, list, tuple, str, bytes, "
                "int, float, bool, None, set) may be stored in a dataset"
            ) from None


    def _new_set(self, kind: type, iterable: Any) -> Any:
        items = list(iterable)
        for item in items:
            self.hash_budget -= _hash_steps(item, self.hash_budget)
            if self.hash_budget < 0:
                raise RecordTooComplex(
                    f"pickle builds a {kind.__name__} whose members take too many steps to hash "
                    "(shared tuples: a hash bomb?)"
                )
        return kind(items)


def _hash_steps(obj: Any, limit: int) -> int:
    """What hashing `obj` costs (as `pickle_scan.hash_work` counts it); stops counting past `limit`."""
    steps = 0
    todo = [obj]
    while todo and steps <= limit:
        item = todo.pop()
        if type(item) is tuple:
            steps += 1
            todo.extend(item)
        elif type(item) is int:
            steps += 1 + item.bit_length() // 30
        else:
            steps += 1
    return steps


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


def check_pickle_hashing(data: bytes) -> None:
    """Raise RecordTooComplex when unpickling `data` would hash more than `max_record_nodes`
    tuple items and int digits for dict keys and set members (a shared tuple used as a key: a
    "hash bomb", which hangs `pickle.loads` itself). Call it before unpickling. A C walk over
    the opcodes clears a pickle that shares no tuple or int; only the others are scanned in Python."""
    if shares_objects(data):
        budget = max_record_nodes(len(data))
        if hash_work(data, budget) > budget:
            raise RecordTooComplex(
                f"pickle of {len(data)} bytes makes the unpickler hash more than {budget:,} items for dict keys "
                "and set members (a shared tuple used as a key: a hash bomb?)"
            )


class GlobalRefused(pickle.UnpicklingError):
    """Raised by the audit hook in a guarded frame; the pickle goes to RestrictedUnpickler."""


# The audit hook and the code objects of the functions whose direct `pickle.loads` calls it
# restricts: state of this process, set up by the first `guard_pickle_loads_in`, never at import.
_guarded_code: set = set()
_hook_lock = threading.Lock()
_hook_installed: bool | None = None  # None: not tried yet in this process


def _refuse_globals_in_guarded_frames(event: str, args: tuple) -> None:
    if event == "pickle.find_class" and sys._getframe(1).f_code in _guarded_code:
        raise GlobalRefused(f"pickle refers to {args[0]}.{args[1]}")


def guard_pickle_loads_in(function: Any) -> bool:
    """Restrict every `pickle.loads` that `function` itself calls to plain data: a global
    raises GlobalRefused (see the module docstring), and the caller gives the pickle to
    `restricted_loads`. The first call in a process installs the audit hook that does it (a
    hook is process-wide and Python cannot remove it); later calls only register `function`.

    Returns False where audit hooks cannot be added (a sandbox's own hook may refuse new ones):
    then nothing is guarded and `function` must not call `pickle.loads` on untrusted bytes.
    """
    global _hook_installed
    with _hook_lock:
        if _hook_installed is None:
            try:
                sys.addaudithook(_refuse_globals_in_guarded_frames)
            except Exception:  # noqa: BLE001 - a sandbox's own hook may refuse new hooks
                _hook_installed = False
            else:
                _hook_installed = True
        if _hook_installed:
            _guarded_code.add(function.__code__)
        return _hook_installed


def restricted_loads(data: bytes) -> Any:
    """Unpickle plain data through `RestrictedUnpickler`: no set-up, no state (the slower way;
    `PlainDataUnpickler` is the fast one, for readers of many records).

    Raises UnsafePickle for a global other than set/frozenset/bytearray, RecordTooComplex for
    a record that nests or expands without bound or whose keys take too long to hash (see
    `check_record_shape`, `check_pickle_hashing`), and pickle.UnpicklingError (or EOFError,
    ValueError...) for bytes that are not a pickle.
    """
    check_pickle_hashing(data)
    unpickler = RestrictedUnpickler(io.BytesIO(data))
    if len(data) * _NODES_PER_PAYLOAD_BYTE > _MIN_RECORD_NODES:
        unpickler.hash_budget = max_record_nodes(len(data))
    record = unpickler.load()
    check_record_shape(record, len(data))
    return record


class PlainDataUnpickler:
    """Unpickles plain data, the fast way: `pickle.loads` in a frame `guard_pickle_loads_in`
    restricts, so a plain-data pickle costs what `pickle.loads` costs; a pickle that names a
    global goes to `restricted_loads`. Making one sets the fast path up (installing the audit
    hook if this process has none yet); `fast=False`, or a process where hooks cannot be
    added, uses `restricted_loads` alone. Same results and errors either way.
    """

    def __init__(self, fast: bool = True) -> None:
        self.fast = fast and guard_pickle_loads_in(PlainDataUnpickler.loads)

    def __reduce__(self) -> tuple:
        # An audit hook is this process's: another process sets the fast path up again.
        return (PlainDataUnpickler, (self.fast,))

    def loads(self, data: bytes) -> Any:
        """The record in a pickle payload; raises as `restricted_loads` does."""
        if self.fast:
            if shares_objects(data):
                check_pickle_hashing(data)
            try:
                record = pickle.loads(data)  # guarded frame: a global raises GlobalRefused, nothing runs
            except GlobalRefused:
                pass  # nothing ran; let the class-checking unpickler decide
            else:
                check_record_shape(record, len(data))
                return record
        return restricted_loads(data)  # (checks the hashing again: a rare path)


class Serializer(Protocol):
    """What `build_dataset` and the readers need; CPM-Bee's Serializer classes fit it too."""

    def serialize(self, obj: Any) -> bytes: ...

    def deserialize(self, data: bytes) -> Any: ...


class PickleSerializer:
    """CPM-Bee's default: `pickle.dumps(obj)` at protocol 4; read back as plain data only
    (`PlainDataUnpickler`)."""

    name = "pickle"

    def __init__(self) -> None:
        self._unpickler = PlainDataUnpickler()

    def serialize(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=PICKLE_PROTOCOL)

    def deserialize(self, data: bytes) -> Any:
        return self._unpickler.loads(data)


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

    def __init__(self) -> None:
        self._unpickler = PlainDataUnpickler()

    def serialize(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=PICKLE_PROTOCOL)

    def deserialize(self, data: bytes) -> Any:
        if data[:1] == PICKLE_PREFIX:
            return self._unpickler.loads(data)
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
