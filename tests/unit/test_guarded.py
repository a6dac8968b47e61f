"""The one per-record guard of the stream agents (``streams.agents.guarded``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from streams import metrics
from streams import topics as t
from streams.agents import guarded
from tests.support.agent_capture import AgentCapture


@dataclass
class Message:
    value: bytes | None
    key: bytes | None = b"k"
    topic: str = "p-events"
    partition: int = 2
    offset: int = 7


@dataclass
class Event:
    message: Message


@dataclass
class Topic:
    sent: list[dict[str, Any]] = field(default_factory=list)
    fail: bool = False

    async def send(self, **record: Any) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.sent.append(record)


def handle_all(values: list[bytes], dlq: Topic) -> list[bytes]:
    """Run a loop shaped like an agent's: the guard around each record; what was handled."""
    done: list[bytes] = []

    async def agent() -> None:
        for n, value in enumerate(values):
            async with guarded(Event(Message(value, offset=n)), dlq, "identity-devices"):  # type: ignore[arg-type]
                orjson.loads(value)  # raises on a bad record, like TimelineEvent.from_bytes
                done.append(value)

    asyncio.run(agent())
    return done


def test_a_record_that_raises_is_dead_lettered_and_the_loop_goes_on() -> None:
    dlq = Topic()
    before = metrics.EVENTS_OUT.labels("identity-devices", "dead-lettered")._value.get()
    done = handle_all([b"1", b"{bad", b"3"], dlq)
    assert done == [b"1", b"3"]
    (letter,) = dlq.sent
    assert letter["value"] == b"{bad" and letter["key"] == b"k"
    headers = letter["headers"]
    assert headers[t.DLQ_HEADER_STAGE] == b"identity-devices"
    assert headers[t.DLQ_HEADER_SOURCE] == b"p-events/2@1"
    (reason,) = orjson.loads(headers[t.DLQ_HEADER_REASONS])
    assert reason.startswith("$: identity-devices failed on this record: JSONDecodeError")
    assert metrics.EVENTS_OUT.labels("identity-devices", "dead-lettered")._value.get() == before + 1


def test_if_the_dead_letter_cannot_be_written_the_agent_stops_loudly() -> None:
    with pytest.raises(ConnectionError):
        handle_all([b"{bad", b"2"], Topic(fail=True))


def test_cancellation_is_not_swallowed() -> None:
    dlq = Topic()

    async def agent() -> None:
        async with guarded(Event(Message(b"1")), dlq, "journey"):  # type: ignore[arg-type]
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(agent())
    assert dlq.sent == []


def test_an_error_past_the_batch_guard_exits_the_worker_before_the_batch_is_acked(monkeypatch) -> None:
    """An agent that raised would only be stopped by Faust, silently (and Faust's take_events
    would have acked its batch in a finally), so the worker exits at once (os._exit, no finally
    runs) with its own code, before the batch is acked."""
    from streams import agents

    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(agents.os, "_exit", fake_exit)

    async def body() -> None:
        async with agents.crash_on_error("journey"):
            raise ConnectionError("the producer refused the dead letter")

    with pytest.raises(SystemExit):
        asyncio.run(body())
    assert codes == [agents.CRASH_EXIT_CODE]


def test_a_batch_writes_each_key_with_its_own_record_as_the_current_event() -> None:
    """Faust writes a table key's changelog to the current event's partition; in a batch the
    current event is the last record, so each key is written with its own record current."""
    from faust.streams import current_event

    from streams.agents import write_states
    from streams.steps import States

    class Table(dict):
        def __setitem__(self, key, value) -> None:
            super().__setitem__(key, (value, current_event().message.partition))

    states = States(lambda key: None)
    states.put("a", 1, Message(b"x", partition=0))
    states.put("b", 2, Message(b"y", partition=3))
    table = Table()
    write_states(table, states)  # type: ignore[arg-type]
    assert table == {"a": (1, 0), "b": (2, 3)}
    assert current_event() is None


@pytest.mark.parametrize("value", [b'{"account": "", "id": "r1"}', b'{"account": "a1", "id": "r1", "after": 5}',
                                   b"[1]", b"{bad", None])
def test_a_rebuild_request_that_cannot_be_answered_is_dead_lettered_not_retried_forever(value) -> None:
    """The store's rebuild agent retried every failing read forever: a request naming the empty
    account (whose read is refused) stalled every later rebuild; an ``after`` that is no list
    stopped the agent."""
    from types import SimpleNamespace

    from streams.agents import rebuilds


    class Stream:
        async def events(self):
            yield Event(Message(value, topic="journeys-journey-rebuilds-v1"))

    app, dlq = AgentCapture(), Topic()
    rebuilds.register(app, SimpleNamespace(journey_rebuilds=None, inbound_dlq=dlq), None,  # type: ignore[arg-type]
                      SimpleNamespace(get=lambda: None))
    asyncio.run(asyncio.wait_for(app.fn(Stream()), timeout=10))
    (letter,) = dlq.sent
    assert letter["value"] == (value or b"") and letter["headers"][t.DLQ_HEADER_STAGE] == b"store"
