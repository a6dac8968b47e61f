"""A resolving sink's batch ends as the next refresh may start, and a refresh about to start
waits for the inserts under way (streams/agents/store.py, ``Resolver.window`` / ``inserts``):
the rows are then covered by that refresh instead of waiting for the one after it."""

from __future__ import annotations

import asyncio
import time
import types

from streams.agents.store import Resolver


def _resolver(interval: float) -> tuple[Resolver, list[float]]:
    resolver = Resolver(types.SimpleNamespace(get=lambda: None), interval)  # type: ignore[arg-type]
    return resolver, []


def _pairs_of(calls: list[float]):
    def pairs_of(_store, _rows):
        calls.append(time.monotonic())
        return []  # nothing to re-resolve: the refresh runs no statement

    return pairs_of


def test_the_window_ends_when_the_next_refresh_may_start_and_is_zero_when_idle() -> None:
    async def run() -> None:
        resolver, calls = _resolver(0.5)
        window = resolver.window(2.0)
        assert window([]) == 0.0  # idle: store now, refresh at once
        began = time.monotonic()
        await resolver.request(_pairs_of(calls), [("row",)])
        left = window([])
        assert 0.1 < left <= 0.5 - Resolver.MARGIN_S  # until the interval has passed (slack for a loaded machine)
        assert resolver.window(0.1)([]) == 0.1  # never longer than the sink's own longest window
        resolver.took = 1.2  # a refresh that outlasts the interval: the next starts once it ended
        assert window([]) > 0.5
        await asyncio.sleep(0.6 - (time.monotonic() - began))
        assert not resolver.running and window([]) == 0.0

    asyncio.run(run())


def test_a_refresh_waits_for_an_insert_under_way_but_not_forever() -> None:
    async def run() -> None:
        resolver, calls = _resolver(0.0)
        with resolver.inserts():  # the identity links' sink is storing its batch
            refreshed = resolver.request(_pairs_of(calls), [("timeline row",)])
            await asyncio.sleep(0.1)
            assert calls == [] and not refreshed.done()
            stored = time.monotonic()
        await asyncio.wait_for(refreshed, 2)
        assert calls and calls[0] >= stored

        resolver.WAIT_INSERTS_S = 0.2
        calls.clear()
        with resolver.inserts():  # an insert retried for as long as ClickHouse is down
            began = time.monotonic()
            await asyncio.wait_for(resolver.request(_pairs_of(calls), [("row",)]), 2)
            assert calls and 0.15 < calls[0] - began < 1.0

    asyncio.run(run())
