"""Fewer glibc malloc arenas for the worker process (``JOURNEYS_MALLOC_ARENA_MAX``).

glibc gives threads their own arenas (up to 8 × cores). A worker's threads — the Kafka
consumer thread, RocksDB's flush and compaction threads — allocate and free in different arenas
(the embedded ClickHouse engine brings its own jemalloc and does not use glibc's), and freed
memory that stays fragmented there is never returned: ``make soak`` saw free-but-held malloc memory grow by ~27 MB in 6 minutes while the live objects stayed flat.
Two arenas is the usual advice for such processes (as for the JVM and RocksDB users); the
setting is applied with ``mallopt`` when the worker starts, before ``create_app`` starts the
worker's own threads (the chDB and rocksdict imports before it may already have started theirs).

``glibc_usage`` reads ``mallinfo2`` for ``journeys_malloc_bytes``: what glibc holds for Python,
RocksDB and the Kafka client, split into bytes in use and bytes freed but kept.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # <malloc.h>
M_MMAP_THRESHOLD = -3


class _Mallinfo2(ctypes.Structure):  # struct mallinfo2, glibc >= 2.33
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]


@functools.cache
def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _mallopt(param: int, value: int, setting: str) -> bool:
    """``mallopt(param, value)``; False when not on glibc (``setting`` is then ignored)."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        log.debug("not glibc: %s ignored", setting)
        return False
    return bool(mallopt(param, value))


def limit_arenas(arena_max: int) -> bool:
    """Cap glibc's arenas at ``arena_max`` (0: leave the default). False when not on glibc."""
    return arena_max > 0 and _mallopt(M_ARENA_MAX, arena_max, "JOURNEYS_MALLOC_ARENA_MAX")


def set_mmap_threshold(kib: int) -> bool:
    """Serve every allocation of ``kib`` KiB or more with its own ``mmap`` (0: glibc's default).

    glibc's default threshold starts at 128 KiB and rises to the largest block freed so far, so
    a worker's big transient buffers — orjson's parse buffer of 12 × the document for each table
    value it reads, socket reads and the Kafka client's ``bytearray`` buffers — come from the
    ``brk`` heap. Freed, they leave holes between longer-lived blocks, and as journeys grow the
    next buffer no longer fits any hole, so the heap grows while its live part stays flat
    (``malloc_info``: the freed-but-kept memory of a ``make soak`` stream process sat in 16–256 KiB
    chunks). Mapped blocks go back to the system when freed. Setting the threshold also fixes it
    (glibc stops moving it), as ``MALLOC_MMAP_THRESHOLD_`` would.
    """
    return kib > 0 and _mallopt(M_MMAP_THRESHOLD, kib * 1024, "JOURNEYS_MALLOC_MMAP_THRESHOLD_KB")


def glibc_usage() -> dict[str, int]:
    """glibc's heap: ``in_use`` (allocated, mmapped chunks included) and ``free_held`` (freed,
    not returned to the system). Empty when not on glibc >= 2.33."""
    mallinfo2 = getattr(_libc(), "mallinfo2", None)
    if mallinfo2 is None:
        return {}
    mallinfo2.restype = _Mallinfo2
    info = mallinfo2()
    return {"in_use": info.uordblks + info.hblkhd, "free_held": info.fordblks}
