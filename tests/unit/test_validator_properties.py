"""Properties of the one bridge from bytes to events (:mod:`schemas.decode`), by hypothesis."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from schemas.decode import decode, event_time, validate
from schemas.errors import InvalidEvent
from schemas.events import EVENT_TYPES, MAX_EVENT_BYTES

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
LIMIT = timedelta(minutes=5)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CRM = ("conversation", "lead_status", "opportunity")

json_leaf = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
ids = st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=24)
offsets = st.sampled_from([timedelta(0), timedelta(hours=2), timedelta(hours=-5), timedelta(hours=5, minutes=30)])
# event times in the accepted range, up to a minute before NOW (never "in the future")
past = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2026, 11, 1, 11, 59))


@st.composite
def aware(draw: st.DrawFn, base: st.SearchStrategy[datetime] = past) -> str:
    naive = draw(base)
    offset = draw(offsets)
    return (naive.replace(tzinfo=timezone.utc)).astimezone(timezone(offset)).isoformat()


@st.composite
def valid_event(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(EVENT_TYPES))
    when = draw(aware())
    if kind in ("track", "page", "identify", "group", "alias"):
        event: dict[str, Any] = {"type": kind, "messageId": draw(ids), "userId": draw(ids), "timestamp": when}
        if draw(st.booleans()):
            event["anonymousId"] = draw(ids)
        free = st.dictionaries(st.text(max_size=8), json_value, max_size=3)
        event |= {"track": {"event": draw(ids), "properties": draw(free)}, "page": {"name": draw(ids)},
                  "identify": {"traits": draw(free)}, "group": {"groupId": draw(ids)},
                  "alias": {"previousId": draw(ids)}}[kind]
        return event
    if kind == "conversation":
        return {"type": kind, "conversationId": draw(ids), "channel": "call", "repId": draw(ids), "repRole": "AE",
                "direction": "inbound", "startedAt": when, "crmAccountId": draw(ids),
                "durationSeconds": draw(st.integers(0, 7 * 24 * 3600))}
    if kind == "lead_status":
        return {"type": kind, "leadId": draw(ids), "status": "mql", "changedAt": when}
    return {"type": kind, "opportunityId": draw(ids), "crmAccountId": draw(ids), "action": "created",
            "amount": str(draw(st.decimals(0, 10**9, places=2))), "currency": "EUR", "changedAt": when}


def rejection(raw: bytes) -> InvalidEvent | None:
    """decode's verdict; any exception other than InvalidEvent fails the test."""
    try:
        decode(raw, received_at=NOW, max_future=LIMIT)
    except InvalidEvent as exc:
        return exc
    return None


def assert_well_formed(exc: InvalidEvent | None) -> None:
    if exc is None:
        return
    assert exc.reasons, "a rejection carries at least one reason"
    for reason in exc.reasons:
        assert reason.path.startswith("$"), reason
        assert reason.message


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_nothing_but_invalid_event(raw: bytes) -> None:
    assert_well_formed(rejection(raw))


@FAST
@given(json_value)
def test_arbitrary_json_raises_nothing_but_invalid_event(value: Any) -> None:
    assert_well_formed(rejection(orjson.dumps(value)))


@FAST
@given(valid_event(), st.data())
def test_mutated_events_raise_nothing_but_invalid_event(event: dict[str, Any], data: st.DataObject) -> None:
    field = data.draw(st.sampled_from(sorted(event)))
    mutation = data.draw(st.sampled_from(["drop", "replace", "datetime"]))
    if mutation == "drop":
        del event[field]
    elif mutation == "replace":
        event[field] = data.draw(json_value)
    else:  # extreme but well-formed datetimes: must not overflow anything
        extreme = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
        event[field] = data.draw(aware(extreme))
    assert_well_formed(rejection(orjson.dumps(event)))


@FAST
@given(valid_event())
def test_valid_events_round_trip(event: dict[str, Any]) -> None:
    decoded, when = decode(orjson.dumps(event), received_at=NOW, max_future=LIMIT)
    again, when_again = decode(orjson.dumps(decoded.model_dump(mode="json", exclude_none=True)),
                               received_at=NOW, max_future=LIMIT)
    assert again == decoded and when_again == when
    assert when.tzinfo is not None and when.utcoffset() == timedelta(0)


@FAST
@given(valid_event(), st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=3, max_size=12))
def test_unknown_fields_tolerant_for_segment_strict_for_crm(event: dict[str, Any], name: str) -> None:
    assume(name not in event and name not in {"context", "sentAt", "receivedAt", "originalTimestamp", "properties",
                                              "traits", "anonymousId", "userId", "messageId", "name", "category"})
    event["x" + name] = {"anything": [1, 2]}
    exc = rejection(orjson.dumps(event))
    if event["type"] in CRM:
        assert exc is not None
        assert [str(r) for r in exc.reasons] == [f"$.x{name}: unknown field (this event type is strict)"]
    else:
        assert exc is None


@FAST
@given(valid_event(), st.integers(1, 4 * MAX_EVENT_BYTES))
def test_oversized_payloads_are_rejected_before_parsing(event: dict[str, Any], extra: int) -> None:
    raw = orjson.dumps(event)
    padded = raw[:-1] + b"," + b'"pad":"' + b"x" * (MAX_EVENT_BYTES - len(raw) + extra) + b'"}'
    exc = rejection(padded)
    assert exc is not None and exc.oversized and exc.stage == "decode"
    assert [r.path for r in exc.reasons] == ["$"]


@FAST
@given(st.integers(-10**6, 10**6))
def test_future_limit_is_exact(seconds_ahead: int) -> None:
    when = (NOW + timedelta(seconds=seconds_ahead)).isoformat()
    exc = rejection(orjson.dumps({"type": "track", "messageId": "m", "userId": "u", "event": "e", "timestamp": when}))
    if timedelta(seconds=seconds_ahead) > LIMIT:
        assert exc is not None and exc.reasons[0].path == "$.timestamp" and "in the future" in exc.reasons[0].message
    else:
        assert exc is None


@FAST
@given(st.integers(-10 * 365 * 86400, 10 * 365 * 86400), st.integers(0, 3600), st.integers(0, 86400))
def test_skew_correction_is_independent_of_the_device_clock(skew: int, delay: int, transit: int) -> None:
    """A device clock off by ``skew`` seconds: the corrected time is the same for every skew."""
    happened = datetime(2026, 10, 1, tzinfo=timezone.utc)
    received = happened + timedelta(seconds=delay + transit)
    device = timedelta(seconds=skew)
    event = validate({"type": "page", "messageId": "m", "anonymousId": "a",
                      "timestamp": (happened + device).isoformat(),
                      "sentAt": (happened + timedelta(seconds=delay) + device).isoformat(),
                      "receivedAt": received.isoformat()})
    assert event_time(event, NOW) == received - timedelta(seconds=delay)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z"])
def test_out_of_range_times_are_reasons_not_crashes(when: str) -> None:
    exc = rejection(orjson.dumps({"type": "track", "messageId": "m", "userId": "u", "event": "e", "timestamp": when}))
    assert exc is not None and exc.reasons[0].path == "$.timestamp"
