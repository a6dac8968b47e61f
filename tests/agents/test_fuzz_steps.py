"""Hostile input through every stream step (issue 20): hypothesis draws batches that mix valid
events with deep nesting, oversized values, type confusion, huge integers, control characters,
broken UTF-8 and random bytes, and runs them through the same steps the Faust agents run
(``streams.steps.memory``). Invariant: every input line is stored (its event id on the timeline)
or dead-lettered with its original bytes, a stage and a reason — none lost, no stage stops."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.decode import decode
from schemas.definitions import load
from schemas.errors import InvalidEvent
from schemas.timeline import TimelineEvent
from streams.steps.memory import MemoryRunner
from tests.unit.test_validator_properties import json_value, valid_event

DEFS = load()
EDGE_STAGES = {b"decode", b"validate", b"ingest"}  # the ingest step's rejections: the contract
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for i in range(depth):
        value = {"a": value} if i % 2 else [value]
    return value


def nested_json(depth: int) -> bytes:
    """JSON nested ``depth`` levels, written as text (no JSON writer goes that deep)."""
    opens = b"".join(b'{"a":' if i % 2 else b"[" for i in range(depth))
    closes = b"".join(b"}" if i % 2 else b"]" for i in reversed(range(depth)))
    return opens + b'"bottom"' + closes


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    """One line as a careless or hostile sender writes it."""
    event = draw(valid_event())
    how = draw(st.sampled_from(["valid", "deep", "huge", "types", "bigint", "control", "badutf8", "bytes", "json",
                                "longid", "extra"]))
    props_key = "properties" if event["type"] in ("track", "page") else "traits"
    if how == "deep":
        event[props_key] = {"x": "DEEP"}
        depth = draw(st.sampled_from([20, 31, 33, 100, 220, 300, 1500]))
        return orjson.dumps(event).replace(b'"DEEP"', nested_json(depth), 1)
    elif how == "huge":
        event[props_key] = {"blob": "x" * draw(st.sampled_from([20_000, 33_000, 600_000]))}
    elif how == "types":
        field = draw(st.sampled_from(sorted(event)))
        event[field] = draw(json_value)
    elif how == "bigint":
        event[props_key] = {"n": 2 ** draw(st.sampled_from([63, 64, 70, 200]))}
        return json.dumps(event).encode()  # orjson refuses to write them; senders do not
    elif how == "control":
        event[props_key] = {"k\x00": "v\u202e\x1b[31m", "\U0001F600": "\ud800" if draw(st.booleans()) else "ok"}
        return json.dumps(event).encode()  # lone surrogates escaped as \\ud800
    elif how == "badutf8":
        return orjson.dumps(event).replace(b'"type"', b'"ty\xff\xfepe"', 1)
    elif how == "bytes":
        return draw(st.binary(max_size=200))
    elif how == "json":
        return orjson.dumps(draw(json_value))
    elif how == "longid":
        for field in ("messageId", "userId", "leadId", "opportunityId", "conversationId"):
            if field in event:
                event[field] = "i" * draw(st.sampled_from([64, 300, 10_000]))
    elif how == "extra":
        event["unexpected"] = {"deep": nested(10)}
    return orjson.dumps(event)


def expected_id(line: bytes) -> str | None:
    try:
        event, _ = decode(line, received_at=datetime.now(timezone.utc), max_future=timedelta(days=3650))
    except InvalidEvent:
        return None
    return str(event.messageId)


@FUZZ
@given(lines=st.lists(hostile(), min_size=1, max_size=25), batch_size=st.sampled_from([1, 7, 50]),
       partitions=st.sampled_from([1, 3]))
def test_every_hostile_input_is_stored_or_dead_lettered_and_no_stage_stops(lines, batch_size, partitions) -> None:
    runner = MemoryRunner(DEFS, batch_size=batch_size, partitions=partitions, shuffle=len(lines))
    runner.feed(lines)
    runner.run()  # any exception escaping a step's guard fails here
    stored = set()
    for record in runner.records(runner.names.timeline):
        entry = TimelineEvent.from_bytes(record.value)
        if not entry.replay:
            stored.add(entry.event_id)
    dead = runner.records(runner.names.inbound_dlq)
    dead_values = [r.value for r in dead]
    for line in lines:
        event_id = expected_id(line)
        if event_id is not None:
            assert event_id in stored, f"valid input lost: {line[:200]!r}"
        else:
            assert line in dead_values, f"invalid input neither stored nor dead-lettered: {line[:200]!r}"
    for record in dead:
        headers = dict(record.headers or [])
        assert headers.get("journeys.dlq.stage") and headers.get("journeys.dlq.reasons"), headers
    assert all(dict(r.headers or []).get("journeys.dlq.stage") in EDGE_STAGES for r in dead), \
        "only the edge rejects: a later stage dead-lettering our own output is a bug"
