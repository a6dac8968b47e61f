"""A sink acks its batches in the order it stored them, each only once the refresh covering its
rows ran, and stores its next batch meanwhile (streams/agents/store.py, ``InOrderAcks``)."""

from __future__ import annotations

import asyncio

import pytest

from streams.agents.store import InOrderAcks


def test_the_next_batch_is_stored_while_the_last_waits_for_its_refresh_and_acks_keep_their_order() -> None:
    async def run() -> list[str]:
        acked: list[str] = []
        acks = InOrderAcks(lambda messages: acked.extend(messages), in_flight=1)
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        await asyncio.wait_for(acks.add(["a1", "a2"], first), 1)  # returns at once: the sink goes on
        assert acked == []  # not before its refresh
        storing = asyncio.ensure_future(acks.add(["b1"], second))
        await asyncio.sleep(0.01)
        assert not storing.done()  # two batches waiting: the sink waits for the oldest
        second.set_result(None)  # the second batch's refresh ran first…
        await asyncio.sleep(0.01)
        assert acked == []  # …yet nothing is acked before the first batch
        first.set_result(None)
        await asyncio.wait_for(storing, 1)
        await asyncio.sleep(0.01)
        return acked

    assert asyncio.run(run()) == ["a1", "a2", "b1"]


def test_a_batch_without_a_refresh_is_acked_at_once_unless_one_before_it_waits() -> None:
    async def run() -> list[str]:
        acked: list[str] = []
        acks = InOrderAcks(lambda messages: acked.extend(messages), in_flight=2)
        await acks.add(["dead-letter"], None)
        assert acked == ["dead-letter"]
        refresh = asyncio.get_running_loop().create_future()
        await acks.add(["timeline"], refresh)
        await acks.add(["after"], None)  # waits behind the timeline batch
        await asyncio.sleep(0.01)
        assert acked == ["dead-letter"]
        refresh.set_result(None)
        await asyncio.sleep(0.01)
        return acked

    assert asyncio.run(run()) == ["dead-letter", "timeline", "after"]


def test_a_cancelled_refresh_never_acks_its_batch_and_stops_the_sink() -> None:
    async def run() -> list[str]:
        acked: list[str] = []
        acks = InOrderAcks(lambda messages: acked.extend(messages), in_flight=1)
        refresh = asyncio.get_running_loop().create_future()
        await acks.add(["x"], refresh)
        refresh.cancel()  # shutting down
        with pytest.raises(asyncio.CancelledError):
            await acks.add(["y"], asyncio.get_running_loop().create_future())
        return acked

    assert asyncio.run(run()) == []
