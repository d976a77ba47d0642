"""How much hashing unpickling a pickle makes the unpickler do, found without unpickling it.

The C unpickler hashes every dict key and set member it inserts (SETITEM(S), DICT, ADDITEMS,
FROZENSET). Hashing a tuple hashes its items, and tuples do not cache their hash, so a tuple
shared through the memo (GET) or DUP - t1 = (t0, t0), t2 = (t1, t1), ... t60 - costs 2**60
steps to hash from a pickle of about 130 bytes: `pickle.loads` itself never returns, before
any check of the record can run. Ints do not cache their hash either (a shared huge int,
inserted many times, is quadratic); str, bytes and frozenset do.

`hash_work` walks the opcodes (`pickletools.genops`) and keeps, for each stack and memo item,
what hashing it costs (1 + its items' for a tuple, ~its 30-bit digits for an int, 1 for the
rest), and adds up what every insertion would hash. It is pure Python, tens of times slower
than `pickle.loads`, so readers run it only where `shares_objects` (C, `_pickle_sharing.c`,
40-80 ns a record) says the pickle may use an object twice whose hash is not cached: a DUP,
or a memo GET of anything but a str, small int, float, None, bool or new empty container.
Otherwise the hashing is linear in the pickle's size. JSON-like records never need the scan
(their repeated keys and one-character strings come back as BINGETs of strs), nor does any
record pickle writes without tuples. Without the compiled module every pickle is scanned
(same results, slower).
"""

from __future__ import annotations

import pickle
import pickletools
from collections.abc import Callable

try:
    from corpus.dataset._pickle_sharing import shares_objects as _compiled_shares_objects
except ImportError:  # not built: every pickle is treated as sharing, and scanned
    _compiled_shares_objects = None


def _always_shares(data: bytes) -> bool:
    return True


shares_objects: Callable[[bytes], bool] = _compiled_shares_objects or _always_shares
"""True when the pickle may use an object twice whose hash is not cached (or has an opcode the
test does not know, or no STOP): then `hash_work` must look at it before it is unpickled."""

_MARK = object()
_KEY_INSERTS = frozenset(("SETITEM", "SETITEMS", "DICT"))
_MEMBER_INSERTS = frozenset(("ADDITEMS", "FROZENSET"))
_GETS = frozenset(("GET", "BINGET", "LONG_BINGET"))
_PUTS = frozenset(("PUT", "BINPUT", "LONG_BINPUT"))
_INTS = frozenset(("INT", "LONG", "LONG1", "LONG4", "BININT", "BININT1", "BININT2"))
_FIXED_TUPLES = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}


def hash_work(data: bytes, limit: int) -> int:
    """Steps of hashing (tuple items and int digits visited) that unpickling `data` does for dict
    keys and set members; counting stops as soon as it exceeds `limit` (so the scan is linear in
    the pickle's size whatever it holds). Raises pickle.UnpicklingError for bytes that are not a
    well-formed pickle (pickletools' ValueError, a stack underflow)."""
    cap = limit + 1
    stack: list = []
    memo: dict[int, int] = {}
    work = 0

    def pop_to_mark() -> list:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1 :]
                del stack[i:]
                return items
        raise pickle.UnpicklingError("pickle: MARK expected on the stack")

    try:
        for opcode, arg, _ in pickletools.genops(data):
            name = opcode.name
            if name in _KEY_INSERTS or name in _MEMBER_INSERTS:
                if name == "SETITEM":
                    if len(stack) < 3 or _MARK in stack[-3:]:
                        raise IndexError
                    keys = [stack[-2]]
                    del stack[-2:]
                else:
                    items = pop_to_mark()
                    keys = items[0::2] if name in ("SETITEMS", "DICT") else items
                    if name == "DICT" or name == "FROZENSET":
                        stack.append(1)  # a new dict; a frozenset caches its hash
                    elif not stack or stack[-1] is _MARK:
                        raise IndexError  # no dict or set to insert into
                work += sum(keys)
                if work > limit:
                    return work
            elif name in _GETS:
                stack.append(memo.get(arg, 1))
            elif name in _PUTS:
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name == "DUP":
                stack.append(stack[-1])
            elif name == "TUPLE":
                stack.append(min(cap, 1 + sum(pop_to_mark())))
            elif name in _FIXED_TUPLES:
                n = _FIXED_TUPLES[name]
                if len(stack) < n or _MARK in stack[-n:]:
                    raise IndexError
                items = stack[-n:]
                del stack[-n:]
                stack.append(min(cap, 1 + sum(items)))
            elif name in _INTS:
                stack.append(1 + int(arg).bit_length() // 30 if isinstance(arg, int) else 1)
            elif name == "STOP":
                break
            else:  # everything else by its declared stack effect; new objects hash in one step
                before = opcode.stack_before
                if pickletools.markobject in before:
                    pop_to_mark()
                    n = before.index(pickletools.markobject)
                else:
                    n = len(before)
                if n:
                    if len(stack) < n or _MARK in stack[-n:]:
                        raise IndexError
                    del stack[-n:]
                stack.extend(_MARK if item is pickletools.markobject else 1 for item in opcode.stack_after)
    except (IndexError, TypeError) as error:
        raise pickle.UnpicklingError(f"pickle: stack underflow ({type(error).__name__})") from None
    except ValueError as error:
        raise pickle.UnpicklingError(f"pickle: {error}") from None
    return work
