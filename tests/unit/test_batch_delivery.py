"""streams/agents/delivery.py: a batch agent's records, handed on a fetch at a time. What Faust's
stream did per record — skip what was fetched before a rebalance, track before handling, ack
once every reader has acked, hold the fetch loop back when the agent is behind — the source
does per record too. (The loop itself runs in every integration and fault test.)"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types.tuples import ConsumerMessage

from streams.agents import delivery


class FakeConsumer:
    def __init__(self) -> None:
        self._unacked_messages: set[Any] = set()
        self.acked: list[int] = []

    def track_message(self, message: Any) -> None:
        self._unacked_messages.add(message)

    def ack(self, message: Any) -> bool:
        message.acked = True
        self._unacked_messages.discard(message)
        self.acked.append(message.offset)
        return True


def fake_app(generation: int = 1) -> Any:
    app = SimpleNamespace(consumer=FakeConsumer(), consumer_generation_id=generation,
                          topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
    app.active = True
    app.flow_control = SimpleNamespace(is_active=lambda: app.active)
    return app


def msg(offset: int, generation: int = 1, topic: str = "t") -> ConsumerMessage:
    return ConsumerMessage(topic, 0, offset, 1.0, 0, None, b"k", b"v", None, generation_id=generation)


def channel(*names: str) -> Any:
    return SimpleNamespace(topics=names)


def test_a_batch_is_tracked_when_taken_and_committable_only_after_the_ack() -> None:
    app = fake_app()
    src = delivery.source(app, channel("t"), limit=100)

    async def run() -> list[Any]:
        records = [msg(i) for i in range(5)]
        for m in records:
            m.incref()  # as the fetch loop does, once per source
        await src.deliver(records)
        batch = await src.take(3, window=0)
        assert [m.offset for m in batch] == [0, 1, 2]
        assert all(m.tracked for m in batch) and app.consumer._unacked_messages == set(batch)
        assert app.consumer.acked == []  # handled: not yet
        src.ack(batch)
        assert app.consumer.acked == [0, 1, 2] and not app.consumer._unacked_messages
        rest = await src.take(3, window=0)
        return rest

    rest = asyncio.run(run())
    assert [m.offset for m in rest] == [3, 4] and not any(m.acked for m in rest)


def test_a_record_read_by_two_agents_is_committable_once_both_acked() -> None:
    app = fake_app()
    journey = delivery.source(app, channel("timeline", "ticks"), limit=100)
    store = delivery.source(app, channel("timeline"), limit=100)
    assert app.__dict__[delivery.SOURCES]["timeline"] == (journey, store)
    assert app.__dict__[delivery.SOURCES]["ticks"] == (journey,)

    async def run() -> None:
        m = msg(7, topic="timeline")
        m.incref(2)
        await journey.deliver([m])
        await store.deliver([m])
        journey.ack(await journey.take(10, window=0))
        assert app.consumer.acked == []  # the store has not stored it yet
        store.ack(await store.take(10, window=0))
        assert app.consumer.acked == [7]

    asyncio.run(run())


@pytest.mark.parametrize("why", ["older generation", "flow suspended"])
def test_records_fetched_before_a_rebalance_are_never_handed_on_nor_acked(why: str) -> None:
    app = fake_app(generation=2)
    src = delivery.source(app, channel("t"), limit=100)

    async def run() -> list[Any]:
        old = [msg(0, generation=1), msg(1, generation=1)] if why == "older generation" else [msg(0, 2), msg(1, 2)]
        await src.deliver(old)
        if why == "flow suspended":
            app.active = False
            stale_before = delivery.stale
            task = asyncio.ensure_future(src.take(10, window=0))
            await asyncio.sleep(0.01)
            assert delivery.stale == stale_before + 2
            app.active = True
        else:
            task = asyncio.ensure_future(src.take(10, window=0))
            await asyncio.sleep(0.01)
        assert not task.done()  # nothing current: it waits for the next fetch
        fresh = msg(2, generation=2)
        await src.deliver([fresh])
        return await task

    batch = asyncio.run(run())
    assert [m.offset for m in batch] == [2]
    assert app.consumer.acked == [] and app.consumer._unacked_messages == {batch[0]}


def test_a_batch_waits_its_window_to_fill_then_goes_with_what_came() -> None:
    app = fake_app()
    src = delivery.source(app, channel("t"), limit=100)

    async def run() -> tuple[list[int], list[int]]:
        await src.deliver([msg(0)])
        task = asyncio.ensure_future(src.take(3, window=5.0))
        await asyncio.sleep(0.01)
        assert not task.done()  # 1 of 3: waits for more within the window
        await src.deliver([msg(1), msg(2), msg(3)])
        full = [m.offset for m in await task]  # full: goes at once, long before 5 s
        await src.deliver([msg(4)])
        partial = [m.offset for m in await src.take(3, window=0.05)]
        return full, partial

    full, partial = asyncio.run(asyncio.wait_for(run(), 2.0))
    assert full == [0, 1, 2] and partial == [3, 4]


def test_the_fetch_loop_waits_while_the_agent_is_behind() -> None:
    app = fake_app()
    src = delivery.source(app, channel("t"), limit=4)

    async def run() -> None:
        await src.deliver([msg(i) for i in range(4)])
        more = asyncio.ensure_future(src.deliver([msg(4)]))
        await asyncio.sleep(0.01)
        assert not more.done() and len(src) == 4  # full: the fetch loop is held back
        await src.take(2, window=0)
        await asyncio.wait_for(more, 1.0)
        assert len(src) == 3

    asyncio.run(run())


def test_install_replaces_only_the_fetch_loop_and_is_idempotent() -> None:
    before = Consumer._drain_messages
    try:
        delivery.install()
        delivery.install()
        assert Consumer._drain_messages is delivery._drain_messages
    finally:
        Consumer._drain_messages = before  # type: ignore[method-assign]


def test_the_window_is_decided_when_the_first_record_is_there_from_what_is_queued() -> None:
    """A stage's window follows the records queued when its batch begins, not the last batch:
    after a burst the last batch said "behind", and the first record after a pause waited the
    long window at every stage (streams/agents, ``batches``)."""
    app = fake_app()
    src = delivery.source(app, channel("t"), limit=100)
    seen: list[list[int]] = []

    def window(queued: Any) -> float:
        seen.append([m.offset for m in queued])
        return 5.0 if queued[-1].offset < 10 else 0.0  # old records: behind, a long window

    async def run() -> list[int]:
        await src.deliver([msg(0)])
        behind = asyncio.ensure_future(src.take(3, window))
        await asyncio.sleep(0.01)
        assert not behind.done()  # behind: waits to fill
        await src.deliver([msg(1), msg(2)])
        assert [m.offset for m in await behind] == [0, 1, 2]
        waiting = asyncio.ensure_future(src.take(3, window))
        await asyncio.sleep(0.01)
        assert seen == [[0]]  # not decided before a record is there
        await src.deliver([msg(10)])  # a fresh record after the pause
        return [m.offset for m in await waiting]  # at once: no long window

    assert asyncio.run(asyncio.wait_for(run(), 2.0)) == [10]
    assert seen == [[0], [10]]


def test_sizes_count_the_records_a_pack_holds_and_a_batch_takes_whole_packs() -> None:
    """A pack (streams/packs.py) weighs the records it holds: a batch of at most ``most`` records
    takes whole packs (at least one, however big), and the source's limit counts records too."""
    app = fake_app()
    src = delivery.source(app, channel("t"), limit=1_000)

    def pack(offset: int, count: int) -> ConsumerMessage:
        return ConsumerMessage("t", 0, offset, 1.0, 0, [("journeys.pack", str(count).encode())], b"k", b"v", None,
                               generation_id=1)

    async def run() -> list[list[int]]:
        await src.deliver([pack(0, 600), pack(1, 300), msg(2), pack(3, 150)])
        assert len(src) == 1_051
        room = asyncio.ensure_future(src.deliver([msg(4)]))  # over the limit: waits for the agent
        await asyncio.sleep(0)
        assert not room.done()
        taken = [[m.offset for m in await src.take(500, window=0)]]  # the first pack alone: bigger than most
        await asyncio.sleep(0)
        assert room.done() and len(src) == 452
        taken.append([m.offset for m in await src.take(451, window=0)])  # 300 + 1 + 150 records: not the next
        taken.append([m.offset for m in await src.take(451, window=0)])
        return taken

    assert asyncio.run(run()) == [[0], [1, 2, 3], [4]]
