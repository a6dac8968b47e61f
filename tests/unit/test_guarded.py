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
