"""streams/fast_delivery.py: the fetch loop's per-record ``wait_first`` runs a callback that need
not wait inline (no tasks), and one that must wait exactly as Faust does — finished once it can
go on, cancelled if the flow is suspended first, its errors raised."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.transport.consumer import Consumer

from streams import fast_delivery


def _consumer() -> Consumer:
    fast_delivery.install()
    app = faust.App("fast-delivery-test", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False)
    return app.consumer  # built, never started: no broker needed


def test_installed_on_faust_consumer() -> None:
    consumer = _consumer()
    assert type(consumer).wait_first is fast_delivery.wait_first


def test_a_callback_that_need_not_wait_runs_inline_without_tasks() -> None:
    async def main() -> None:
        consumer = _consumer()
        seen: list[int] = []

        async def callback(n: int) -> int:
            seen.append(n)
            return n * 2

        before = fast_delivery.inline
        tasks = len(asyncio.all_tasks())
        result = await consumer.wait_first(callback(21), consumer.suspend_flow.wait())
        assert seen == [21] and result.done and result.results == [42] and not result.stopped
        assert fast_delivery.inline == before + 1
        assert len(asyncio.all_tasks()) == tasks  # the flow's wait was closed, not left running

    asyncio.run(main())


def test_a_callback_that_must_wait_finishes_once_it_can_go_on() -> None:
    async def main() -> None:
        consumer = _consumer()
        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        steps: list[str] = []

        async def callback() -> str:
            steps.append("first")
            value = await gate  # a full stream buffer, say
            steps.append(value)
            await asyncio.sleep(0)
            return "delivered"

        asyncio.get_running_loop().call_later(0.01, gate.set_result, "then")
        before = fast_delivery.inline
        result = await consumer.wait_first(callback(), consumer.suspend_flow.wait())
        assert steps == ["first", "then"] and result.results == ["delivered"]
        assert fast_delivery.inline == before  # Faust's path

    asyncio.run(main())


def test_a_waiting_callback_is_cancelled_when_the_flow_is_suspended_first() -> None:
    async def main() -> None:
        consumer = _consumer()
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        cancelled: list[bool] = []

        async def callback() -> None:
            try:
                await gate
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        asyncio.get_running_loop().call_later(0.01, consumer.suspend_flow.set)
        result = await consumer.wait_first(callback(), consumer.suspend_flow.wait())
        await asyncio.sleep(0.01)
        assert cancelled == [True] and gate.cancelled()  # as a task of its own would have
        assert result.done and result.done[0] is not None  # the suspension won, as in Faust

    asyncio.run(main())


def test_errors_of_the_callback_are_raised_inline_and_after_a_wait() -> None:
    async def main() -> None:
        consumer = _consumer()

        async def at_once() -> None:
            raise ValueError("at once")

        async def later() -> None:
            await asyncio.sleep(0.001)
            raise KeyError("later")

        with pytest.raises(ValueError):
            await consumer.wait_first(at_once(), consumer.suspend_flow.wait())
        with pytest.raises(KeyError):
            await consumer.wait_first(later(), consumer.suspend_flow.wait())

    asyncio.run(main())


def test_while_the_flow_is_suspended_every_record_takes_fausts_path() -> None:
    async def main() -> None:
        consumer = _consumer()
        consumer.suspend_flow.set()

        async def callback() -> str:
            return "ran"

        before = fast_delivery.inline
        await consumer.wait_first(callback(), consumer.suspend_flow.wait())
        assert fast_delivery.inline == before

    asyncio.run(main())


def test_a_callback_held_by_the_apps_flow_control_is_resumed_not_lost() -> None:
    """The suspected cause of the restart stall (a wake-up lost by the half-run callback): a first
    step that waits on the app's flow control (suspended during table recovery) and on the
    producer buffer's flush resumes once the flow control resumes, whichever of the two events
    (the resume, a flow suspension of the consumer) comes first in the same loop iteration.
    It passes: that is not where the stalled worker waited (see the module's docstring)."""
    async def main() -> None:
        consumer = _consumer()
        flow_control = consumer.app.flow_control  # initially suspended, as in recovery
        delivered: list[str] = []

        async def callback() -> str:
            await flow_control.acquire()  # Faust's conductor, first await of on_message
            await asyncio.sleep(0)  # then the producer buffer's ebb (a flush step)
            delivered.append("ok")
            return "delivered"

        loop = asyncio.get_running_loop()
        loop.call_later(0.01, flow_control.resume)
        result = await asyncio.wait_for(consumer.wait_first(callback(), consumer.suspend_flow.wait()), 2)
        assert delivered == ["ok"] and result.results == ["delivered"]

        flow_control.suspend()
        again: list[str] = []

        async def held() -> None:
            await flow_control.acquire()
            again.append("ran")

        def both() -> None:  # the flow resumes and the consumer's flow is suspended at once
            flow_control.resume()
            consumer.suspend_flow.set()

        loop.call_later(0.01, both)
        result = await asyncio.wait_for(consumer.wait_first(held(), consumer.suspend_flow.wait()), 2)
        await asyncio.sleep(0.01)
        assert result.done  # the wait ended: one of them won, nothing hangs

    asyncio.run(main())
