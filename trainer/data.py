"""The trainer's data loader: packed batches from a mixture manifest, made in a background process.

    loader = MixtureLoader(StreamConfig(manifest_path, batch_size, max_length, rank, world_size, seed), tokenizer)
    batch = next(loader)              # dict of numpy arrays (trainer.packing.PackedBatch)
    state = loader.state_dict()       # goes into the checkpoint, one per rank
    ...
    loader = MixtureLoader(...same config...)
    loader.load_state_dict(state)     # before the first next(): continues with the next batch

A spawned process runs `trainer.stream.BatchStream` and sends each batch through a bounded
queue together with the stream's state right after it. `state_dict()` is the state that
came with the last batch handed to the trainer, so batches still waiting in the queue are
made again after a resume and the resumed run sees exactly the batches an uninterrupted run
would have seen.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import queue
import signal
import time
import traceback
from typing import Any

from schemas.run_config import DataSection
from trainer.packing import PackedBatch
from trainer.stream import BatchStream, StreamConfig

LOADER_STATE_VERSION = 1


def _produce(config: StreamConfig, tokenizer: Any, state: dict[str, Any] | None, batches: Any, stop: Any) -> None:
    """Background process: put ("batch", batch, state) items until `stop` is set, or one ("error", text)."""
    # Ctrl-C is for the trainer, which then closes the loader; the worker must not die first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    trainer = multiprocessing.parent_process()

    def running() -> bool:
        # A SIGKILLed trainer never sets `stop`: without this check the worker would live on,
        # holding the launcher's output pipes open.
        return not stop.is_set() and trainer.is_alive()

    try:
        stream = BatchStream(config, tokenizer)
        if state is not None:
            stream.load_state_dict(state)
        while running():
            item = ("batch", next(stream), stream.state_dict())
            while running():
                try:
                    batches.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
        batches.cancel_join_thread()  # stopping: items still buffered are not wanted
    except BaseException:  # report everything: the trainer re-raises it with this traceback
        batches.put(("error", traceback.format_exc()))
        batches.close()
        batches.join_thread()  # make sure the report is in the pipe before the process ends


class MixtureLoader:
    """Endless packed batches for one rank; an iterator with `state_dict` / `load_state_dict`.

    Takes the stream's config (`trainer.stream.StreamConfig`: manifest, batch shape, rank,
    seed, ...) and a tokenizer (`tokenization.CPMBeeTokenizer`); `prefetch` (batches made
    ahead) and `background` (False: in-process, for debugging) are how it runs the stream.
    `from_config` builds one from a run config's `data` section. Raises (on `next`) the
    background process's error with its traceback.
    """

    def __init__(self, config: StreamConfig, tokenizer: Any, *, prefetch: int = 2, background: bool = True) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.prefetch = prefetch
        self.background = background
        self._state: dict[str, Any] | None = None  # stream state after the last batch handed out
        self._stream: BatchStream | None = None  # in-process mode
        self._process: Any = None
        self._queue: Any = None
        self._stop: Any = None
        self.batches = 0
        self.wait_seconds = 0.0  # total time next() waited for data
        self.last_wait_seconds = 0.0

    @classmethod
    def from_config(cls, data: DataSection, manifest_path: str | os.PathLike, tokenizer: Any, rank: int,
                    world_size: int, seed: int) -> MixtureLoader:
        """The loader a run config's `data` section describes, for `manifest_path` (its training
        or its evaluation manifest)."""
        config = StreamConfig(
            str(manifest_path), data.batch_size, data.max_length, rank, world_size, seed, max_depth=data.max_depth,
            weight_by=data.weight_by, shuffle_answers=data.shuffle_answers, token_shards=data.token_shards,
        )  # fmt: skip
        return cls(config, tokenizer, prefetch=data.prefetch, background=data.background)

    # -------------------------------------------------------------- iteration

    def __iter__(self) -> MixtureLoader:
        return self

    def __next__(self) -> PackedBatch:
        started = time.perf_counter()
        if self.background:
            batch, state = self._next_from_worker()
        else:
            if self._stream is None:
                self._stream = BatchStream(self.config, self.tokenizer)
                if self._state is not None:
                    self._stream.load_state_dict(self._state)
            batch = next(self._stream)
            # a copy, as the background process's pickling makes one: the stream lives on
            state = copy.deepcopy(self._stream.state_dict())
        self.last_wait_seconds = time.perf_counter() - started
        self.wait_seconds += self.last_wait_seconds
        self._state = state
        self.batches += 1
        return batch

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # safe with threads, torch and CUDA in the parent
        self._queue = context.Queue(maxsize=self.prefetch)
        self._stop = context.Event()
        self._process = context.Process(
            target=_produce,
            args=(self.config, self.tokenizer, self._state, self._queue, self._stop),
            name=f"bee-data-rank{self.config.rank}",
            daemon=True,
        )
        self._process.start()

    def _next_from_worker(self) -> tuple[PackedBatch, dict[str, Any]]:
        if self._process is None:
            self._start()
        while True:
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                if self._process.is_alive():
                    continue
                try:  # it may have ended right after its last put
                    item = self._queue.get(timeout=1.0)
                except queue.Empty:
                    code = self._process.exitcode
                    self.close()
                    raise RuntimeError(f"data process exited (code {code}) without reporting an error") from None
            if item[0] == "error":
                self.close()
                raise RuntimeError(f"data process failed:\n{item[1]}")
            _, batch, state = item
            return batch, state

    def counters(self) -> dict[str, dict[str, int]]:
        """The stream's counts as of the last batch handed out: `rejects` ("task.dataset:reason" ->
        samples skipped) and `samples_read` ("shards" / "online" -> samples), over the whole run."""
        state = self._state or {}
        return {"rejects": dict(state.get("rejects", {})), "samples_read": dict(state.get("samples_read", {}))}

    # -------------------------------------------------------------- checkpoint state

    def state_dict(self) -> dict[str, Any]:
        """This rank's data state after the last batch returned by `next` (picklable)."""
        return {"version": LOADER_STATE_VERSION, "batches": self.batches, "stream": self._state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue after the batch `state` was taken at. Restarts the background process if running.

        Raises ValueError for a state of another version; a state of another rank or world
        size is refused by the stream on the next `next`.
        """
        if state.get("version") != LOADER_STATE_VERSION:
            raise ValueError(f"data loader state version {state.get('version')!r}, expected {LOADER_STATE_VERSION}")
        self.close()
        self._state = state["stream"]
        self.batches = state["batches"]

    # -------------------------------------------------------------- shutdown

    def close(self) -> None:
        """Stop the background process (if any); the loader can be used again afterwards."""
        self._stream = None
        if self._process is None:
            return
        self._stop.set()
        # No reads from here on: the worker leaves without flushing its queue
        # (cancel_join_thread), so the pipe may end in half a message, and a read would block
        # forever. The worker's puts time out and see `stop`, so it exits by itself.
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()
        self._queue.close()
        self._process = self._queue = self._stop = None

    def __enter__(self) -> MixtureLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
