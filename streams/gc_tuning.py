"""The worker's cyclic garbage collector, tuned for batches (issue #17).

Measured on a 20,000-event drain (``python -m bench.drain --events 20000``, 2 cores, faust-streaming
0.15.3, CPython 3.11) with ``gc.callbacks`` timing every collection in the worker processes:

* **The stream process spent 2.2–2.6 s of its ≈ 11 s of CPU in the collector**, 2.1 s of it in 29
  full (generation 2) collections of ≈ 70 ms each that freed almost nothing (426 objects in all).
  A stage holds a batch of records across awaits, so with CPython's default thresholds
  (700, 10, 10) a batch's short-lived objects outlive two young collections and are promoted to
  the oldest generation; their count is what triggers the next full collection, and each full
  collection walks every container the process holds (Faust's and aiokafka's structures, the
  tables' caches, the imported modules).
* Eight of those full collections were Faust's own: ``rocksdb.Store.revoke_partitions`` calls
  ``gc.collect()`` for every table on every rebalance, even one that revokes nothing — the first
  assignment at start-up included (:mod:`streams.faust_startup` keeps it only when a database was
  closed).

:func:`tune` (the worker calls it once its app is built): everything alive then — modules, the
app, its agents and tables, definitions — is moved out of the collector's reach (``gc.freeze``:
objects that never die need not be walked again), and the young generation collects after
:data:`GEN0_THRESHOLD` net container allocations instead of 700, so a batch's objects die of
their reference counts before a collection can promote them. Reference counting frees nearly
everything the tracker allocates; the collector remains for cycles, only less often.
Figures: docs/benchmarks.md (twenty-fourth session).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

GEN0_THRESHOLD = 50_000
"""Net container allocations between young collections (CPython: 700)."""
GEN1_THRESHOLD = 20
"""Young collections between middle ones (CPython: 10)."""
GEN2_THRESHOLD = 10
"""Middle collections between full ones, when the long-lived objects also grew by 25% (CPython: 10)."""


def tune() -> None:
    """Freeze what is alive now and raise the young threshold (see the module)."""
    gc.collect()  # what start-up left as garbage is not frozen with the rest
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """:func:`tune`'s thresholds for a block, restored after it (nothing frozen): a command that
    may run in a process that outlives it (``journeys import`` under the tests' ``CliRunner``).
    A 100,000-event import (``python -m streams import``, generated NDJSON, broker on the same
    2 cores) spent 12% of its producing process's CPU (0.8 of 6.4 s) in the collector; wall
    10.85, 9.85, 9.79, 8.73, 9.60 s without these thresholds, 8.05, 6.71, 8.91, 7.48 s with them."""
    before = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)
