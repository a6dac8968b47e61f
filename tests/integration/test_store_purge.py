"""The store process hands the embedded engine's freed memory back (streams/agents/store.py,
``purge_freed_memory``): jemalloc kept its dirty pages resident, and ``make soak`` at 700 events/s
saw the worker's RSS grow past its limit with them while the engine's memory in use fell."""

from __future__ import annotations

import asyncio

import pytest

from streams.agents.store import purge_freed_memory
from streams.storehandle import StoreHandle
from streams.web.ops import JEMALLOC_SQL, jemalloc_totals

pytestmark = pytest.mark.integration


def test_a_purge_returns_the_engines_freed_pages(tmp_path) -> None:
    handle = StoreHandle(f"chdb://{tmp_path / 'store'}")
    store = handle.get()

    def resident() -> int:
        return jemalloc_totals(store.query(JEMALLOC_SQL)[1][0][0])["resident"]

    # a sort of a few hundred MB allocates and frees: its pages stay with jemalloc
    store.query("SELECT count() FROM (SELECT toString(number) || repeat('x', 100) AS x FROM numbers(1000000) ORDER BY x)")
    before = resident()
    assert asyncio.run(purge_freed_memory(handle)) is True
    after = resident()
    assert after < before - 8 * 1024 * 1024, (before, after)


def test_a_failed_purge_is_reported_not_raised(tmp_path) -> None:
    handle = StoreHandle(f"chdb://{tmp_path / 'store'}")
    handle.get().close()  # a closed store: the command fails
    assert asyncio.run(purge_freed_memory(handle)) is False
