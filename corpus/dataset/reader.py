"""Reading a dataset: `DistributedDataset` (sharded by block, endless, resumable) and `SimpleDataset`.

Same semantics as CPM-Bee's readers: rank `r` of `w` reads global blocks `b % w == r` of
unmasked files, in a shuffled order, epoch after epoch; files appended to `meta.bin` while
reading join the current epoch, masked files leave it. Unlike CPM-Bee's, a block is read
in one `pread` and parsed in memory, pickles go through the restricted unpickler, a corrupt
block raises `DatasetCorrupt`, and the shuffle uses a seeded RNG whose state is in
`state_dict()`, so a resume reads exactly the record that would have come next.

State dict (plain Python data, picklable, JSON-able):

    {"version": 1, "world_size": w, "ranks": [one entry per rank it holds]}
    entry = {"rank": r, "seed": seed,
             "block": [current block or -1, offset of the next record in it, repeat_times, shuffle_count],
             "pending": [[block, offset], ...],   # partly read blocks inherited from a re-shard
             "unused": [block, ...],              # blocks of this epoch not started (read from the end)
             "files": [[file_name, block_begin, block_end, mask], ...]}  # meta.bin as the reader knew it

`state_dict()` of one rank holds that rank's entry; `merge_state_dicts` joins the entries of
all ranks (after an all-gather) so `load_state_dict(state, strict=False)` can re-shard them
over a new world size without losing or repeating a block.
"""

from __future__ import annotations

import bisect
import os
import pickle
import random
import warnings
from collections.abc import Iterator
from json import loads as _json_loads
from pathlib import Path
from typing import Any

from schemas import FileInfo

from corpus.atomic_file import file_signature
from corpus.dataset.blockfile import (
    RECORD_LENGTH,
    bad_record,
    block_label,
    check_file_size,
    iter_file_payloads,
    read_block,
)
from corpus.dataset.meta import DatasetCorrupt, meta_path, open_regular_fd, read_meta
from corpus.dataset.serializer import (
    AutoSerializer,
    GlobalRefused,
    PickleSerializer,
    Serializer,
    check_pickle_hashing,
    check_record_shape,
    get_serializer,
    guard_pickle_loads_in,
    restricted_loads,
    shares_objects,
)

STATE_VERSION = 1


def rank_blocks(info: FileInfo, rank: int, world_size: int) -> range:
    """The global blocks of one file that rank `rank` of `world_size` reads: `b % world_size == rank`."""
    first = info.block_begin + (rank - info.block_begin) % world_size
    return range(first, info.block_end, world_size)


class DistributedDataset:
    """Open a dataset read-only; each of `world_size` ranks reads its own share of blocks.

    Takes: `path` of the dataset folder; `rank`, `world_size`; `serializer` (None reads
    pickle and JSON alike, or `"pickle"`, `"json"`, `"raw"`, or an object with
    `deserialize`); `max_repeat_times` (epochs before `read()` raises EOFError; None =
    endless); `shuffle` the block order; `seed` of that shuffle.
    Raises FileNotFoundError without `meta.bin`, DatasetCorrupt for a broken one.

        dataset = DistributedDataset("/data/wiki", rank, world_size)
        record = dataset.read()
    """

    def __init__(
        self,
        path: str | os.PathLike,
        rank: int = 0,
        world_size: int = 1,
        serializer: str | Serializer | None = None,
        max_repeat_times: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of size {world_size}")
        self._path = Path(path)
        self._rank = rank
        self._world_size = world_size
        self._max_repeat_times = max_repeat_times
        self._shuffle = shuffle
        self._seed = seed
        self.serializer = get_serializer(serializer, default="auto")
        self._deserialize = self.serializer.deserialize
        # pickles of the built-in readers decode in read() itself, without a method call
        self._pickle_fast_path = isinstance(self.serializer, (AutoSerializer, PickleSerializer))
        self._json_fast_path = isinstance(self.serializer, AutoSerializer)  # (not 0x80: JSON)
        self._set_up_pickle_loads()

        self._files: list[FileInfo] = []
        self._file_ends: list[int] = []
        self._meta_signature: tuple[int, int, int] | None = None
        self._unused: list[int] = []
        self._pending: list[tuple[int, int]] = []
        self._repeat_times = 0
        self._shuffle_count = 0
        self._record_blocks_in_epoch = 0

        # the block being read, whole, and where its next record starts
        self._curr_block: int | None = None
        self._curr_info: FileInfo | None = None
        self._block: bytes | None = None
        self._block_len = 0
        self._pos = 0
        self._record_pos = 0  # offset of the record read() returned last
        self._fd: int | None = None
        self._fd_name: str | None = None

        self._update_states()
        self._repeat_times += 1

    def _set_up_pickle_loads(self) -> None:
        """read() calls `pickle.loads` itself, one Python call less per record than a
        `PlainDataUnpickler`; `guard_pickle_loads_in` restricts every call it makes to plain data
        (see corpus.dataset.serializer). Where audit hooks cannot be added: `restricted_loads`."""
        self._pickle_loads = pickle.loads if guard_pickle_loads_in(DistributedDataset.read) else restricted_loads

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_pickle_loads"]  # the guard is this process's: set it up again where unpickled
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._set_up_pickle_loads()

    # ---- meta.bin and the block order -------------------------------------------------

    def _shuffled(self, blocks: list[int]) -> list[int]:
        # A fresh RNG per shuffle, seeded by (seed, rank, world size, how many shuffles came
        # before): the whole RNG state is two small ints, kept in state_dict.
        if self._shuffle:
            rng = random.Random(f"{self._seed}:{self._rank}:{self._world_size}:{self._shuffle_count}")
            rng.shuffle(blocks)
            self._shuffle_count += 1
        return blocks

    def _update_states(self) -> None:
        """Follow meta.bin: appended files join this epoch, masked files leave it."""
        path = meta_path(self._path)
        signature = file_signature(path)
        if signature == self._meta_signature:
            return
        infos = read_meta(self._path)
        self._meta_signature = signature
        old = self._files
        if len(infos) < len(old):
            raise DatasetCorrupt(f"{path}: changed while reading: {len(old)} files became {len(infos)}")
        mask_changed = False
        for known, now in zip(old, infos):
            if (known.file_name, known.block_begin, known.block_end) != (now.file_name, now.block_begin, now.block_end):
                raise DatasetCorrupt(
                    f"{path}: changed while reading: {known.file_name} blocks [{known.block_begin}, {known.block_end}) "
                    f"became {now.file_name} blocks [{now.block_begin}, {now.block_end}); only appending files and "
                    "masking may change a dataset being read"
                )
            mask_changed |= known.mask != now.mask
        if len(infos) == len(old) and not mask_changed:
            self._files = infos
            return
        unused = set(self._unused)
        blocks = [
            block
            for index, info in enumerate(infos)
            if not info.mask
            for block in rank_blocks(info, self._rank, self._world_size)
            if index >= len(old) or block in unused
        ]
        self._set_files(infos)
        self._pending = [(b, o) for b, o in self._pending if not self._file_of(b).mask]
        self._unused = self._shuffled(blocks)

    def _set_files(self, infos: list[FileInfo]) -> None:
        self._files = infos
        self._file_ends = [info.block_end for info in infos]

    def _file_of(self, block: int) -> FileInfo:
        index = bisect.bisect_right(self._file_ends, block)
        if index >= len(self._files):
            raise DatasetCorrupt(f"{meta_path(self._path)}: block {block} is not in any file")
        return self._files[index]

    def _mask_file(self, info: FileInfo) -> None:
        self._unused = [b for b in self._unused if not info.block_begin <= b < info.block_end]
        self._pending = [(b, o) for b, o in self._pending if not info.block_begin <= b < info.block_end]

    def _prepare_new_epoch(self) -> None:
        if self._max_repeat_times is not None and self._repeat_times >= self._max_repeat_times:
            raise EOFError("End of dataset")
        if self._record_blocks_in_epoch == 0 and self._max_repeat_times is None:
            # endless reading of a rank without records would loop forever (CPM-Bee's does)
            raise RuntimeError(
                f"{self._path}: rank {self._rank} of {self._world_size} has no records to read "
                f"({sum(info.nblocks for info in self._files if not info.mask)} unmasked blocks in the dataset)"
            )
        blocks = [
            block
            for info in self._files
            if not info.mask
            for block in rank_blocks(info, self._rank, self._world_size)
        ]
        self._unused = self._shuffled(blocks)
        self._repeat_times += 1
        self._record_blocks_in_epoch = 0

    def _next_block(self) -> tuple[int, int]:
        self._update_states()
        if self._pending:
            return self._pending.pop(0)
        while not self._unused:
            self._prepare_new_epoch()  # EOFError once max_repeat_times epochs are done
            if not self._unused and self._max_repeat_times is None:
                raise RuntimeError(f"{self._path}: no blocks for rank {self._rank} of {self._world_size}")
        return self._unused.pop(), 0

    # ---- blocks and records -----------------------------------------------------------

    def _open_block(self, block: int, offset: int) -> None:
        info = self._file_of(block)
        file_path = self._path / info.file_name
        if self._fd_name != info.file_name:
            self._close_file()
            try:
                self._fd = open_regular_fd(file_path)
                check_file_size(file_path, info)
            except FileNotFoundError:
                # CPM-Bee's behaviour: a deleted file is skipped until compact_dataset drops it
                warnings.warn(f"{file_path}: listed in meta.bin but missing; skipping its blocks", stacklevel=3)
                self._mask_file(info)
                return
            self._fd_name = info.file_name
        assert self._fd is not None
        data = read_block(self._fd, file_path, info, block)
        if not 0 <= offset < info.block_size:
            raise DatasetCorrupt(f"{file_path}: {block_label(info, block)}: resume offset {offset} is outside the block")
        self._block, self._pos, self._curr_block, self._curr_info = data, offset, block, info
        self._block_len = len(data)

    def _close_file(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._fd_name = None

    def read(self) -> Any:
        """The next record of this rank. Raises EOFError after `max_repeat_times` epochs,
        DatasetCorrupt for a broken block or a payload that does not decode (an unsafe
        pickle included: nothing of it runs)."""
        # The hot path: the block is in memory; a record is a header check, one unpack and
        # one decode, pickles straight through restricted_loads (no serializer method call).
        while True:
            block = self._block
            if block is not None:
                pos = self._pos
                magic = block[pos]
                if magic == 0x1F and pos + 5 < self._block_len:
                    start = pos + 5
                    end = start + RECORD_LENGTH.unpack_from(block, pos + 1)[0]
                    if end < self._block_len:
                        self._record_pos, self._pos = pos, end
                        if self._pickle_fast_path and block[start] == 0x80:
                            try:
                                # restricted: this frame is guarded (_set_up_pickle_loads); a local
                                # call, as `self._pickle_loads(...)` costs a slow method lookup
                                pickle_loads = self._pickle_loads
                                payload = block[start:end]
                                if shares_objects(payload):  # C, tens of ns; True: scan before loading
                                    check_pickle_hashing(payload)  # no hash bombs
                                record = pickle_loads(payload)
                                check_record_shape(record, end - start)  # no billion laughs, no cycles
                                return record
                            except GlobalRefused:
                                return self._decode_refused(pos, payload)
                            except Exception as error:
                                raise self._undecodable(pos, error) from error
                        try:
                            if self._json_fast_path:
                                return _json_loads(block[start:end].decode("utf-8"))
                            return self._deserialize(block[start:end])
                        except Exception as error:
                            raise self._undecodable(pos, error) from error
                elif magic == 0:
                    if pos:
                        self._record_blocks_in_epoch += 1  # this block had records
                    self._block = self._curr_block = self._curr_info = None
                    continue
                assert self._curr_info is not None and self._curr_block is not None
                raise bad_record(self._path / self._curr_info.file_name, self._curr_info, self._curr_block, pos, block)
            self._open_block(*self._next_block())

    def position(self) -> tuple[FileInfo, int, int]:
        """Where the record `read()` returned last is: (its data file, block within that file, offset
        in the block). The key of its row in the dataset's token shards; valid until the next `read()`."""
        if self._curr_info is None or self._curr_block is None:
            raise RuntimeError("position(): no record has been read from the current block")
        return self._curr_info, self._curr_block - self._curr_info.block_begin, self._record_pos

    def _decode_refused(self, offset: int, payload: bytes) -> Any:
        """A pickle with a global: plain-data ones (a set in protocol 2) still load."""
        try:
            return restricted_loads(payload)  # checks the hashing again: cheap, and this path is rare
        except Exception as error:
            raise self._undecodable(offset, error) from error

    def _undecodable(self, offset: int, error: Exception) -> DatasetCorrupt:
        assert self._curr_info is not None and self._curr_block is not None
        return DatasetCorrupt(
            f"{self._path / self._curr_info.file_name}: {block_label(self._curr_info, self._curr_block)}: "
            f"record at offset {offset} does not decode: {type(error).__name__}: {error}"
        )

    def close(self) -> None:
        """Close the open data file (reading again reopens it)."""
        self._close_file()

    def __del__(self) -> None:
        try:
            self._close_file()
        except Exception:
            pass

    @property
    def files(self) -> list[FileInfo]:
        """The meta.bin lines this reader follows, as it last read them (masked ones included)."""
        return list(self._files)

    @property
    def nbytes(self) -> int:
        """Sum of `nbytes` over the dataset's files (masked ones included, as CPM-Bee)."""
        return sum(info.nbytes for info in self._files)

    @property
    def nlines(self) -> int:
        """Sum of `nlines` over the dataset's files (masked ones included, as CPM-Bee)."""
        return sum(info.nlines for info in self._files)

    # ---- state ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """This rank's read position as plain data (layout in the module docstring).

        Does not change the reader: reading on after it gives the same records as without.
        """
        block = [-1 if self._curr_block is None else self._curr_block, self._pos if self._block is not None else 0]
        entry = {
            "rank": self._rank,
            "seed": self._seed,
            "block": [*block, self._repeat_times, self._shuffle_count],
            "pending": [list(item) for item in self._pending],
            "unused": list(self._unused),
            "files": [[i.file_name, i.block_begin, i.block_end, i.mask] for i in self._files],
        }
        return {"version": STATE_VERSION, "world_size": self._world_size, "ranks": [entry]}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Continue from `state`: the next `read()` gives the record that came next when it was taken.

        `state` holds this rank's entry (same world size), or the entries of all ranks of
        another world size (`merge_state_dicts`) with `strict=False`: then this rank takes
        the unread blocks, and the partly read ones at their offsets, that are now its own.
        A state dict of CPM-Bee's own reader is accepted too (see `state_from_cpm_bee`).
        Raises ValueError for a state of another world size with `strict=True`, or one that
        lacks ranks; DatasetCorrupt when the dataset changed other than by appending.
        """
        if "states" in state and "block" in state and "ranks" not in state:
            state = self.state_from_cpm_bee(state)
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"dataset state version {state.get('version')!r} is not {STATE_VERSION}")
        entries = {entry["rank"]: entry for entry in state["ranks"]}
        old_world_size = state["world_size"]
        if old_world_size == self._world_size and self._rank in entries:
            self._restore(entries[self._rank])
            return
        if strict:
            raise ValueError(
                f"world_size changed ({old_world_size} -> {self._world_size}); load with strict=False "
                "to re-shard the merged states of all ranks"
            )
        if sorted(entries) != list(range(old_world_size)):
            raise ValueError(
                f"re-sharding needs the states of all {old_world_size} ranks (merge_state_dicts), got ranks {sorted(entries)}"
            )
        self._reshard(list(entries.values()))

    def state_from_cpm_bee(self, state: dict[str, Any]) -> dict[str, Any]:
        """Our layout from a state dict of CPM-Bee's `DistributedDataset` (torch tensors or lists).

        CPM-Bee's: `states` (world_size, max_unused) block ids padded with -1, `block`
        (world_size, 4) `[current block, offset in it, number unused, repeat_times]`. It has no
        meta.bin snapshot or RNG state: the current meta.bin and shuffle count 0 stand in,
        so the resume continues the same blocks, in a freshly seeded order after this epoch.
        `load_state_dict` calls this itself when it is given such a state.
        """
        to_list = lambda value: value.tolist() if hasattr(value, "tolist") else list(value)  # noqa: E731
        states, blocks = to_list(state["states"]), to_list(state["block"])
        files = [[i.file_name, i.block_begin, i.block_end, i.mask] for i in read_meta(self._path)]
        entries = []
        for rank, (unused, (curr_block, offset, num_unused, repeat_times)) in enumerate(zip(states, blocks)):
            entries.append(
                {
                    "rank": rank,
                    "seed": self._seed,
                    "block": [int(curr_block), int(offset), int(repeat_times), 0],
                    "pending": [],
                    "unused": [int(b) for b in unused[: int(num_unused)]],
                    "files": files,
                }
            )
        return {"version": STATE_VERSION, "world_size": len(entries), "ranks": entries}

    def _snapshot_files(self, files: list[list[Any]]) -> list[FileInfo]:
        """The current meta.bin cut to the files the state knew, with their masks then."""
        infos = read_meta(self._path)
        if len(files) > len(infos):
            raise DatasetCorrupt(f"{meta_path(self._path)}: the saved state knows {len(files)} files, meta.bin lists {len(infos)}")
        known: list[FileInfo] = []
        for (name, begin, end, mask), info in zip(files, infos):
            if (name, begin, end) != (info.file_name, info.block_begin, info.block_end):
                raise DatasetCorrupt(
                    f"{meta_path(self._path)}: {info.file_name} blocks [{info.block_begin}, {info.block_end}) does not "
                    f"match the saved state's {name} blocks [{begin}, {end})"
                )
            known.append(info.model_copy(update={"mask": bool(mask)}))
        return known

    def _reset_position(self, files: list[list[Any]]) -> None:
        self._set_files(self._snapshot_files(files))
        self._meta_signature = None  # the next block fetch re-reads meta.bin, as the saved reader would
        self._block = self._curr_block = self._curr_info = None
        self._pos = 0
        self._record_blocks_in_epoch = 1  # unknown: do not call the rank empty before a full epoch has passed

    def _restore(self, entry: dict[str, Any]) -> None:
        self._reset_position(entry["files"])
        curr_block, offset, self._repeat_times, self._shuffle_count = (int(v) for v in entry["block"])
        self._seed = entry["seed"]
        self._pending = [(int(b), int(o)) for b, o in entry["pending"]]
        self._unused = [int(b) for b in entry["unused"]]
        if curr_block >= 0:
            # re-read the block and go on at the saved offset
            self._pending.insert(0, (curr_block, offset))
            self._open_block(*self._pending.pop(0))

    def _reshard(self, entries: list[dict[str, Any]]) -> None:
        longest = max(entries, key=lambda entry: len(entry["files"]))
        self._reset_position(longest["files"])
        mine = self._world_size, self._rank
        partial = []
        unused = []
        for entry in entries:
            curr_block, offset = int(entry["block"][0]), int(entry["block"][1])
            if curr_block >= 0:
                partial.append((curr_block, offset))
            partial.extend((int(b), int(o)) for b, o in entry["pending"])
            unused.extend(int(b) for b in entry["unused"])
        self._pending = sorted((b, o) for b, o in partial if b % mine[0] == mine[1])
        self._repeat_times = max(int(entry["block"][2]) for entry in entries)
        self._shuffle_count = max(int(entry["block"][3]) for entry in entries)
        self._seed = longest["seed"]
        self._unused = self._shuffled(sorted(b for b in unused if b % mine[0] == mine[1]))


def merge_state_dicts(states: list[dict[str, Any]]) -> dict[str, Any]:
    """Join the state dicts of several ranks (e.g. all-gathered) into one.

    Raises ValueError when they disagree on version or world size, or repeat a rank.
    """
    if not states:
        raise ValueError("no states to merge")
    versions = {state.get("version") for state in states}
    world_sizes = {state["world_size"] for state in states}
    if len(versions) != 1 or len(world_sizes) != 1:
        raise ValueError(f"states disagree: versions {sorted(map(str, versions))}, world sizes {sorted(world_sizes)}")
    entries = [entry for state in states for entry in state["ranks"]]
    ranks = [entry["rank"] for entry in entries]
    if len(set(ranks)) != len(ranks):
        raise ValueError(f"states repeat ranks: {sorted(ranks)}")
    return {"version": versions.pop(), "world_size": world_sizes.pop(), "ranks": sorted(entries, key=lambda e: e["rank"])}


class SimpleDataset(DistributedDataset):
    """The whole dataset once, as an iterable: `for record in SimpleDataset(path)`; `len()` = nlines."""

    def __init__(
        self,
        path: str | os.PathLike,
        serializer: str | Serializer | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(path, 0, 1, serializer=serializer, max_repeat_times=1, shuffle=shuffle, seed=seed)

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                record = self.read()
            except EOFError:
                self._repeat_times = 0  # iterable again, as CPM-Bee's
                return
            yield record

    def __len__(self) -> int:
        return self.nlines


def iter_records(path: str | os.PathLike, serializer: str | Serializer | None = None) -> Iterator[Any]:
    """Every record of the unmasked files, in file and block order (no sharding, no shuffle).

    Raises DatasetCorrupt for a broken block or a record that does not decode.
    """
    deserialize = get_serializer(serializer, default="auto").deserialize
    for info in read_meta(path):
        if info.mask:
            continue
        for global_block, payload in iter_file_payloads(path, info):
            try:
                record = deserialize(payload)
            except Exception as error:
                raise DatasetCorrupt(
                    f"{Path(path) / info.file_name}: {block_label(info, global_block)}: a record does not decode: "
                    f"{type(error).__name__}: {error}"
                ) from None
            yield record
