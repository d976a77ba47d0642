"""Memory settings for the processes that run a build's stages. A Beam plugin: the build adds
this module to `--beam_plugins`, so every SDK worker imports it at start-up, whatever the runner.

Without them a worker's resident memory keeps the high-water mark of every stage it ran, so it
grows with the corpus although no stage holds more than a bundle. Two allocators keep what was
freed: pyarrow's default pool (mimalloc) caches the pages of the Parquet shards a worker wrote,
and glibc's malloc, after a large block is freed, raises its mmap threshold and from then on
serves large blocks (the runner's data messages) from the heap, which it rarely returns. The
system pool for Arrow and a fixed mmap threshold give that memory back (tests/benchmarks/
RESULTS.md has the figures).
"""

from __future__ import annotations

import ctypes

import pyarrow as pa

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 1 << 20


def bound_worker_memory() -> None:
    """Arrow allocates with the system allocator; glibc maps blocks of MMAP_THRESHOLD_BYTES and up."""
    pa.set_memory_pool(pa.system_memory_pool())
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # glibc only
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


bound_worker_memory()
