"""Memory settings for the processes that run a build's stages. A Beam plugin: the build adds
this module to `--beam_plugins`, so every SDK worker imports it at start-up, whatever the runner.

Without them a worker's resident memory keeps the high-water mark of every stage it ran and
creeps up with every file it finishes, although no stage holds more than a bundle or a file.
Two allocators keep what was freed:
- Arrow's default pool (mimalloc) keeps the pages of the Parquet checkpoints and shards a
  worker read and wrote. Arrow's C++ code takes its pool from ARROW_DEFAULT_MEMORY_POOL when
  pyarrow loads, before any plugin runs, so that variable has to be in the worker's environment
  (local_runner.WORKER_ENVIRONMENT sets it for local workers; for a cluster, set it in the
  SDK harness image).
  `set_memory_pool` below covers the Python API's allocations where it is not set.
- glibc's malloc, after a large block is freed, raises its mmap threshold and from then on
  serves large blocks (the runner's data messages) from the heap, which it rarely returns.
  A fixed threshold keeps large blocks mapped, and unmapped when freed.
"""

from __future__ import annotations

import ctypes

import pyarrow as pa

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 1 << 20


def bound_worker_memory() -> None:
    """Arrow's Python calls allocate with the system allocator; glibc maps blocks of 1 MB and up."""
    pa.set_memory_pool(pa.system_memory_pool())
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # glibc only
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


bound_worker_memory()
