"""The embedded engine's allocator: chDB's own jemalloc, told to hand freed pages back sooner.

chDB links its own jemalloc (not glibc's malloc, :mod:`streams.malloc`), built with ClickHouse's
``dirty_decay_ms:5000``: a freed page stays resident ("dirty") for up to five seconds in case it
is needed again. A worker that stores events all day frees a lot — every insert block, every
refresh, every merge of parts that grow with the store — so those five seconds of freed pages
grow with it. ``make soak`` (30 min at 604 events/s, one worker, bench/results/soak.md): jemalloc's
dirty pages went 50 → 225 MB while its allocated bytes stayed at 120–140 MB, and the worker's RSS
grew 70 MB per 10 min over the second half (the check allows 50).

jemalloc reads ``JE_MALLOC_CONF`` (the prefixed twin of ``MALLOC_CONF``, which it ignores) once,
when chDB is loaded: :func:`configure` sets it before the first ``import chdb`` of the process,
unless the operator set it (theirs wins; ``system.jemalloc_stats`` shows what applied).
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

ENV = "JE_MALLOC_CONF"
DEFAULT = "dirty_decay_ms:1000"
"""Freed pages go back to the system within a second instead of five (see docs/benchmarks.md)."""


def configure() -> str | None:
    """Set :data:`ENV` to :data:`DEFAULT` unless it is set; what applies, or ``None`` when chDB
    is loaded already (its allocator has read its options: nothing changes)."""
    if "chdb" in sys.modules:
        return None
    return os.environ.setdefault(ENV, DEFAULT)
