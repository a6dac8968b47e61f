from datetime import datetime, timedelta, timezone

import orjson
import pytest

from schemas.decode import decode, event_time, validate
from schemas.errors import InvalidEvent

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
LIMIT = timedelta(minutes=5)


def reasons(raw: bytes) -> list[str]:
    with pytest.raises(InvalidEvent) as info:
        decode(raw, received_at=NOW, max_future=LIMIT)
    return [str(r) for r in info.value.reasons]


def test_track_is_accepted_and_times_are_utc() -> None:
    event, when = decode(
        b'{"type":"track","messageId":"m1","anonymousId":"a1","event":"Signed Up",'
        b'"timestamp":"2026-11-01T13:00:00+02:00"}',
        received_at=NOW, max_future=LIMIT,
    )
    assert event.event == "Signed Up"
    assert when == datetime(2026, 11, 1, 11, 0, tzinfo=timezone.utc)


def test_clock_skew_correction_uses_received_minus_client_delay() -> None:
    event = validate({
        "type": "page", "messageId": "m", "anonymousId": "a",
        "timestamp": "2026-11-01T10:00:00Z", "sentAt": "2026-11-01T10:00:30Z",
        "receivedAt": "2026-11-01T11:00:40Z",
    })
    # the device clock is an hour slow: the event happened 30 s before receipt
    assert event_time(event, NOW) == datetime(2026, 11, 1, 11, 0, 10, tzinfo=timezone.utc)


def test_a_blank_user_id_is_no_user_id() -> None:
    """RudderStack's JS SDK sends ``"userId": ""`` before identify (and only originalTimestamp)."""
    event = validate({"type": "page", "messageId": "m", "anonymousId": "a", "userId": "",
                      "originalTimestamp": "2026-11-01T10:00:00Z", "channel": "web"})
    assert event.userId is None and event.anonymousId == "a"
    assert event.client_timestamp == datetime(2026, 11, 1, 10, 0, tzinfo=timezone.utc)
    with pytest.raises(InvalidEvent):  # still an identity needed
        validate({"type": "page", "messageId": "m", "userId": ""})
    with pytest.raises(InvalidEvent):  # an alias names its user
        validate({"type": "alias", "messageId": "m", "anonymousId": "a", "userId": "", "previousId": "a"})


def test_a_clock_skew_correction_out_of_range_falls_back_to_the_received_time() -> None:
    """Issue 20: a ``sentAt`` in 2199 and a ``timestamp`` in 1970 corrected the event into 1796."""
    event = validate({
        "type": "track", "messageId": "m", "anonymousId": "a", "event": "e",
        "timestamp": "1970-01-02T00:00:00Z", "sentAt": "2199-12-31T00:00:00Z",
        "receivedAt": "2026-11-01T11:00:40Z",
    })
    assert event_time(event, NOW) == datetime(2026, 11, 1, 11, 0, 40, tzinfo=timezone.utc)


def test_path_level_reasons() -> None:
    assert reasons(b'{"type":"track","messageId":"m","anonymousId":"a","event":"x","timestamp":"soon"}') == [
        "$.timestamp: Input should be a valid datetime or date, input is too short"
    ]
    assert reasons(b'{"type":"track","messageId":"m","event":"x"}') == [
        "$: Value error, either anonymousId or userId is required"
    ]
    assert reasons(b"[1,2]") == ["$: expected a JSON object, got list"]
    assert reasons(b'{"messageId":"m"}')[0].startswith("$.type: required")
    assert reasons(b'{"type":"launch"}')[0].startswith("$.type: unknown event type 'launch'")


def test_naive_and_future_timestamps_are_rejected() -> None:
    assert reasons(b'{"type":"track","messageId":"m","anonymousId":"a","event":"x","timestamp":"2026-11-01T12:00:00"}') == [
        "$.timestamp: Input should have timezone info"
    ]
    (reason,) = reasons(b'{"type":"track","messageId":"m","anonymousId":"a","event":"x","timestamp":"2026-11-01T13:00:00Z"}')
    assert reason.startswith("$.timestamp: 2026-11-01T13:00:00+00:00 is 3600s in the future")


def test_unknown_fields_tolerant_for_segment_strict_for_crm() -> None:
    event, _ = decode(b'{"type":"identify","messageId":"m","userId":"u","_metadata":{},"traits":{"x":1}}',
                      received_at=NOW, max_future=LIMIT)
    assert event.traits == {"x": 1}
    assert reasons(
        b'{"type":"lead_status","leadId":"l","status":"mql","changedAt":"2026-10-01T00:00:00Z","colour":"red"}'
    ) == ["$.colour: unknown field (this event type is strict)"]


def test_nested_paths_and_list_indices() -> None:
    raw = (b'{"type":"conversation","conversationId":"c","channel":"call","repId":"r","repRole":"SDR",'
           b'"direction":"outbound","startedAt":"2026-10-01T00:00:00Z","contactEmails":["ok@a.com","nope"]}')
    (reason,) = reasons(raw)
    assert reason.startswith("$.contactEmails[1]: String should match pattern")


def test_oversized_and_malformed() -> None:
    with pytest.raises(InvalidEvent) as info:
        decode(b"{" + b" " * 40_000 + b"}", received_at=NOW, max_future=LIMIT)
    assert info.value.oversized and info.value.stage == "decode"
    assert reasons(b"{nope")[0].startswith("$: malformed JSON")


def test_crm_events_get_deterministic_ids() -> None:
    raw = (b'{"type":"opportunity","opportunityId":"o1","crmAccountId":"A","action":"created",'
           b'"amount":"10.00","currency":"EUR","changedAt":"2026-10-01T00:00:00Z"}')
    a, _ = decode(raw, received_at=NOW, max_future=LIMIT)
    b, _ = decode(raw, received_at=NOW + timedelta(days=3), max_future=LIMIT)
    assert a.messageId == b.messageId and a.messageId.startswith("derived-")
    assert reasons(raw.replace(b',"currency":"EUR"', b"")) == ["$: Value error, amount needs a currency"]


def nested(depth: int) -> bytes:
    """``{"a": {"a": ... 1}}`` with ``depth`` objects (written as bytes: orjson cannot write 254+)."""
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("depth", [40, 220, 600, 1023])
def test_deep_nesting_is_refused_with_the_path_where_it_goes_too_deep(depth: int) -> None:
    raw = b'{"type":"track","messageId":"m","userId":"u","event":"e","properties":' + nested(depth) + b"}"
    with pytest.raises(InvalidEvent) as info:
        decode(raw, received_at=NOW, max_future=LIMIT, max_depth=32)
    (reason,) = info.value.reasons
    assert info.value.stage == "decode"
    assert reason.path == "$.properties" + ".a" * 31 and "deeper than 32 levels" in reason.message


def test_nesting_up_to_the_limit_is_accepted() -> None:
    # the event is level 1, properties level 2: 30 more objects reach exactly 32
    raw = b'{"type":"track","messageId":"m","userId":"u","event":"e","properties":' + nested(31) + b"}"
    event, _ = decode(raw, received_at=NOW, max_future=LIMIT, max_depth=32)
    assert event.properties["a"]
    with pytest.raises(InvalidEvent):
        decode(raw, received_at=NOW, max_future=LIMIT, max_depth=31)


@pytest.mark.parametrize("limit", [1, 2, 5, 32])
def test_the_bracket_count_shortcut_never_lets_one_level_too_many_through(limit: int) -> None:
    """A body with no more brackets than the limit skips the depth walk: one bracket more and
    the walk runs, so a body nested exactly one level too deep is still refused."""
    from schemas.decode import parse_json

    assert parse_json(nested(limit), max_depth=limit) is not None
    with pytest.raises(InvalidEvent) as info:
        parse_json(nested(limit + 1), max_depth=limit)
    assert info.value.reasons[0].path == "$" + ".a" * limit
    brackets_in_text = orjson.dumps({"note": "[[[{{{" * 40, "list": [1, 2]})
    assert parse_json(brackets_in_text, max_depth=2)["list"] == [1, 2]


def test_an_integer_beyond_64_bits_is_refused_with_its_path() -> None:
    """Issue 20: read as a float it would be stored rounded; as a string it is kept."""
    from schemas.decode import parse_json

    big = b'{"type":"track","messageId":"m","anonymousId":"a","event":"e","properties":{"ids":[1,123456789012345678901234567890]}}'
    with pytest.raises(InvalidEvent) as caught:
        parse_json(big)
    assert [(r.path, r.message.split(":")[0]) for r in caught.value.reasons] == [
        ("$.properties.ids[1]", "integer beyond 64 bits")]
    # the 64-bit range itself, long digit runs in strings and big floats pass
    assert parse_json(b'{"a": 18446744073709551615, "b": -9223372036854775808, "c": "12345678901234567890123"}')
    assert parse_json(b'{"a": 1.5e300, "b": 123456789012345678901.5}')
    with pytest.raises(InvalidEvent):
        parse_json(b'{"a": -9223372036854775809}')


def test_the_scan_for_long_digit_runs_finds_exactly_what_the_regular_expression_finds() -> None:
    """``wide_integers`` looks for 19 digits in a row with ``bytes.translate`` (faster on every
    event): the same bodies as ``\\d{19}`` — ASCII digits only, in numbers and strings alike."""
    import random
    import re

    from schemas import decode

    rng = random.Random(7)
    alphabet = b'0123456789:-."{}[],e\xd9\xa0 '  # \xd9\xa0: UTF-8 of an Arabic-Indic digit, not \d in bytes
    digits = b"0123456789"  # mostly digits: runs of every length around 19
    bodies = [bytes(rng.choice(digits if rng.random() < 0.93 else alphabet) for _ in range(rng.randint(0, 60)))
              for _ in range(3000)]
    bodies += [b"1" * 18, b"1" * 19, b'{"a":"' + b"9" * 19 + b'"}', b"x" + b"5" * 40]
    found = 0
    for body in bodies:
        found += bool(re.search(rb"\d{19}", body))
        assert (body.translate(decode._DIGITS).find(decode._LONG_RUN) >= 0) == bool(re.search(rb"\d{19}", body)), body
    assert 100 < found < len(bodies) - 100  # both answers well represented
