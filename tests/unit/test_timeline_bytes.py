"""A timeline record's bytes: orjson from the fields, exactly pydantic's JSON (every internal hop
writes one, and the store and other consumers read them)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import orjson

from schemas.timeline import TimelineEvent


def _pydantic(event: TimelineEvent) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


def test_the_bytes_are_pydantics_for_any_time_zone_precision_and_property_value() -> None:
    rng = random.Random(7)
    zones = [timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
    for i in range(3_000):
        at = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(
            seconds=rng.randint(0, 10**8), microseconds=rng.choice([0, 1, 123_000, 999_999, rng.randint(0, 999_999)]))
        event = TimelineEvent(
            event_id=f"e{i}", event_type="track", channel="web", side=rng.choice(["digital", "human", "crm"]),
            event_time=at.astimezone(rng.choice(zones)), received_at=at, account_id=rng.choice(["", "acme"]),
            properties={"a": [1, 2.5, None, True, "ü\u2028"], "n": {"x": -1e300, "y": 2**63 - 1}, "s": "x" * (i % 50)},
            replay=rng.random() < 0.5)
        raw = event.to_bytes()
        assert raw == _pydantic(event)
        assert TimelineEvent.from_bytes(raw) == event


def test_a_value_orjson_does_not_write_takes_pydantics_path() -> None:
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    event = TimelineEvent.model_construct(
        event_id="e1", event_type="track", channel="crm", side="crm", event_time=at, received_at=at,
        properties={"amount": Decimal("12.50"), "tags": {"a"}})
    assert orjson.loads(event.to_bytes())["properties"] == {"amount": "12.50", "tags": ["a"]}


def test_an_event_remembered_for_a_replay_is_pydantics_json_of_its_kept_properties() -> None:
    from streams.rules.identity import replay_json
    from streams.rules.journey import JOURNEY_PROPS

    rng = random.Random(3)
    for i in range(2_000):
        at = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randint(0, 10**8),
                                                                    microseconds=rng.choice([0, 1, 123_000]))
        props = {"path": "/p" + "x" * rng.randint(0, 3), "utm": {"source": "g", "n": rng.random() * 1e6},
                 "title": "CTO ü\u2028", "employees": rng.choice([10, 2**40, 1.5, -0.0, 1e20, 1e-7]), "junk": "y" * 9}
        event = TimelineEvent(event_id=f"e{i}", event_type="identify", channel="web", side="digital",
                              event_time=at.astimezone(timezone(timedelta(hours=rng.choice([0, 2])))), received_at=at,
                              properties=props)
        kept = {k: props[k] for k in JOURNEY_PROPS if k in props}  # what the journey reads, in its order
        assert replay_json(event) == event.model_copy(update={"properties": kept}).model_dump_json()
