"""The guards log where a record failed and why (paths, error types), never the values it
carried: pydantic's ``str(ValidationError)`` quotes its input (``input_value='jane@acme.com'``)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, ValidationError

from schemas.errors import MASKED, loggable
from streams.agents import guarded
from streams.agents.store import unreadable
from streams.steps import Outbox, Record, States, run_batch

EMAIL = "jane.doe@acme.example"
RECORD = orjson.dumps({"userId": EMAIL, "properties": {"email": EMAIL, "seats": f"<{EMAIL}>"}})


class Strict(BaseModel):
    userId: int
    properties: dict[str, int]


def fail_on(value: bytes) -> None:
    Strict.model_validate_json(value)  # ValidationError quoting the email three times


class Validating:
    name = "identity-devices"

    def group(self, records: Any, out: Outbox) -> dict[str, list[tuple[Any, ...]]]:
        return {"k": [(r,) for r in records]}

    def handle(self, key: str, items: list[tuple[Any, ...]], states: States, out: Outbox) -> None:
        for (record,) in items:
            fail_on(record.value)


@dataclass
class Message:
    value: bytes
    key: bytes = b"k"
    topic: str = "inbound"
    partition: int = 0
    offset: int = 3


@dataclass
class Event:
    message: Message


class Topic:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, **record: Any) -> None:
        self.sent.append(record)


def test_the_pydantic_error_itself_would_leak_the_email() -> None:
    """The premise: without the guard's text, the log line would carry it."""
    with pytest.raises(ValidationError) as caught:
        fail_on(RECORD)
    assert EMAIL in str(caught.value)
    text = loggable(caught.value)
    assert EMAIL not in text
    assert "$.userId" in text and "[int_parsing]" in text and "$.properties.email" in text


def test_other_exceptions_have_addresses_masked() -> None:
    assert loggable(KeyError(EMAIL)) == f"KeyError: '{MASKED}'"


def test_a_batch_step_dead_letters_without_logging_the_email(caplog: pytest.LogCaptureFixture) -> None:
    out = Outbox()
    with caplog.at_level(logging.DEBUG):
        run_batch(Validating(), [Record("inbound", b"k", RECORD, offset=1)], States(lambda key: None), out, "dlq")
    assert [t for t, *_ in out.items] == ["dlq"]  # dead-lettered (the letter keeps the bytes)
    assert "dead-lettered" in caplog.text and "$.userId" in caplog.text
    assert EMAIL not in caplog.text


def test_the_agent_guard_dead_letters_without_logging_the_email(caplog: pytest.LogCaptureFixture) -> None:
    dlq = Topic()

    async def agent() -> None:
        async with guarded(Event(Message(RECORD)), dlq, "journey"):  # type: ignore[arg-type]
            fail_on(RECORD)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(agent())
    assert len(dlq.sent) == 1
    assert "dead-lettered" in caplog.text and "ValidationError" in caplog.text
    assert EMAIL not in caplog.text
    assert EMAIL.encode() not in dlq.sent[0]["headers"]["journeys.dlq.reasons"]


def test_the_store_logs_an_unreadable_record_without_the_email(caplog: pytest.LogCaptureFixture) -> None:
    try:
        fail_on(RECORD)
    except ValidationError as exc:
        error = exc
    with caplog.at_level(logging.DEBUG):
        asyncio.run(unreadable(Message(RECORD), "dead_letters", error, None))
    assert "not stored" in caplog.text
    assert EMAIL not in caplog.text
