"""The collector's pure request handling, and its routes against a fake Kafka (no broker)."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas.events import MAX_EVENT_BYTES
from streams import topics as t
from streams.collector.app import build_app
from streams.collector.handling import (
    Accepted,
    Limits,
    Rejected,
    basic_auth_user,
    handle,
    response,
)
from streams.collector.kafka_out import records_for
from streams.collector.settings import Source, key_id
from streams.settings import Settings
from tests.support.fake_out import FakeOut, basic_auth

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
LIMITS = Limits(max_future=timedelta(minutes=5))


def run(body: object, endpoint: str = "batch", limits: Limits = LIMITS):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return handle(raw, endpoint, received_at=NOW, limits=limits)


def track(i: int = 0, **extra: object) -> dict:
    return {"type": "track", "messageId": f"m{i}", "anonymousId": "a1", "event": "Viewed", **extra}


def test_basic_auth_user_is_the_write_key() -> None:
    assert basic_auth_user("Basic " + base64.b64encode(b"wk_123:").decode()) == "wk_123"
    assert basic_auth_user("basic " + base64.b64encode(b"wk_123:ignored").decode()) == "wk_123"
    assert basic_auth_user("Bearer abc") is None
    assert basic_auth_user("Basic !!!") is None
    assert basic_auth_user(None) is None
    assert basic_auth_user("Basic " + base64.b64encode(b":").decode()) is None


def test_single_call_gets_type_from_path_and_received_at_stamp() -> None:
    handled = run({"messageId": "m1", "userId": "u1", "event": "Signed Up", "timestamp": "2026-11-01T11:59:00Z",
                   "sentAt": "2026-11-01T11:59:01Z", "writeKey": "wk"}, "track")
    (item,) = handled.items
    assert isinstance(item, Accepted) and item.key == b"u1" and item.index == 0
    value = orjson.loads(item.value)
    assert value["type"] == "track" and value["receivedAt"] == "2026-11-01T12:00:00.000Z"
    assert value["sentAt"] == "2026-11-01T11:59:01Z"  # kept for the skew correction
    assert "writeKey" not in value and handled.write_key == "wk"
    assert response(handled) == (200, {"success": True})


def test_single_call_type_must_match_the_path() -> None:
    (item,) = run(track(), "identify").items
    assert isinstance(item, Rejected)
    assert [str(r) for r in item.error.reasons] == ["$.type: 'track' was posted to /v1/identify"]


def test_batch_mixes_accepted_and_rejected_with_indices() -> None:
    body = {"batch": [track(0), {"type": "track", "messageId": "m1", "event": "x"}, track(2)],
            "sentAt": "2026-11-01T11:59:59Z", "context": {"library": {"name": "sdk"}, "ip": "10.0.0.1"}}
    body["batch"][2]["context"] = {"ip": "192.0.2.1"}
    handled = run(body)
    assert [type(i).__name__ for i in handled.items] == ["Accepted", "Rejected", "Accepted"]
    third = orjson.loads(handled.items[2].value)
    assert third["sentAt"] == "2026-11-01T11:59:59Z"
    assert third["context"] == {"library": {"name": "sdk"}, "ip": "192.0.2.1"}  # the item wins
    status, payload = response(handled)
    assert status == 400 and payload["success"] is False and payload["accepted"] == 2
    assert payload["rejected"] == [{"index": 1, "reasons": ["$: Value error, either anonymousId or userId is required"]}]


def test_batch_rejects_crm_records_and_crm_endpoint_rejects_segment_calls() -> None:
    conversation = {"type": "conversation", "conversationId": "c1", "channel": "call", "repId": "r", "repRole": "SDR",
                    "direction": "outbound", "startedAt": "2026-10-01T00:00:00Z", "crmAccountId": "acme"}
    (item,) = run({"batch": [conversation]}).items
    assert isinstance(item, Rejected) and "post it to /v1/crm" in str(item.error)
    handled = run({"batch": [conversation, track()]}, "crm")
    assert isinstance(handled.items[0], Accepted) and handled.items[0].key == b"c1"
    assert "receivedAt" not in orjson.loads(handled.items[0].value)  # strict CRM models: never stamped
    assert isinstance(handled.items[1], Rejected) and "is a Segment call" in str(handled.items[1].error)
    (single,) = run(conversation, "crm").items
    assert isinstance(single, Accepted)


def test_malformed_json_keeps_the_original_bytes() -> None:
    (item,) = run(b'{"batch": [', "batch").items
    assert isinstance(item, Rejected) and item.index is None and item.value == b'{"batch": ['
    assert str(item.error.reasons[0]).startswith("$: malformed JSON")
    (item,) = run({"sentAt": "x"}).items
    assert [str(r) for r in item.error.reasons] == ["$.batch: required: a JSON list of calls"]


def test_wrong_types_and_non_objects_in_a_batch() -> None:
    handled = run({"batch": [track(0, event=5), "nope", track(2, timestamp="2026-11-01T13:00:00Z")]})
    reasons = {r["index"]: r["reasons"] for r in response(handled)[1]["rejected"]}
    assert reasons[0] == ["$.event: Input should be a valid string"]
    assert reasons[1] == ["$: expected a JSON object, got str"]
    assert reasons[2][0].startswith("$.timestamp: 2026-11-01T13:00:00+00:00 is 3600s in the future")


def test_size_limits() -> None:
    huge = track(0, properties={"blob": "x" * MAX_EVENT_BYTES})
    (item,) = run(huge, "track").items  # single call: over 32 KiB is a 413
    handled = run(huge, "track")
    assert handled.too_large and isinstance(item, Rejected) and len(item.value) == MAX_EVENT_BYTES
    status, payload = response(handled)
    assert status == 413 and "the limit is 32768" in payload["message"]
    (item,) = run({"batch": [huge]}).items  # batch item: over 32 KiB is a rejected item
    assert isinstance(item, Rejected) and item.error.oversized and not run({"batch": [huge]}).too_large
    small = Limits(max_request_bytes=2048, max_future=timedelta(minutes=5))
    assert run({"batch": [track(i) for i in range(40)]}, limits=small).too_large


def test_empty_batch_is_a_success() -> None:
    assert response(run({"batch": []})) == (200, {"success": True})


def test_records_go_to_inbound_and_dlq_with_source_headers() -> None:
    handled = run({"batch": [track(0), {"type": "track"}]})
    source = Source("website", key_id("wk_secret"))
    good, bad = records_for(handled, source, "p-")
    assert good.topic == "p-" + t.INBOUND.name and good.key == b"a1"
    assert dict(good.headers) == {"journeys.source": b"website", "journeys.write_key_id": source.key_id.encode()}
    assert bad.topic == "p-" + t.INBOUND_DLQ.name
    headers = dict(bad.headers)
    assert headers[t.DLQ_HEADER_SOURCE_KIND] == b"collector"
    assert headers[t.DLQ_HEADER_SOURCE] == f"collector:website:{source.key_id}".encode()
    assert b"wk_secret" not in b"".join(v for _, v in bad.headers) + bad.value


# -- routes, with a fake producer --------------------------------------------------------------
def post(out: FakeOut, path: str, body: bytes, auth: str | None = "wk_live") -> tuple[int, dict]:
    settings = Settings(collector={"write_keys": {"wk_live": "website"}})

    async def go() -> tuple[int, dict]:
        async with TestClient(TestServer(build_app(settings, out))) as client:  # type: ignore[arg-type]
            headers = basic_auth(auth) if auth else {}
            resp = await client.post(path, data=body, headers=headers)
            return resp.status, await resp.json()

    return asyncio.run(go())


def test_routes_auth_and_status_codes() -> None:
    out = FakeOut()
    good = orjson.dumps({"messageId": "m", "userId": "u", "event": "e"})
    assert post(out, "/v1/track", good, auth="wrong")[0] == 401
    assert post(out, "/v1/track", good, auth=None)[0] == 401
    assert post(out, "/v1/track", good) == (200, {"success": True})
    with_key = orjson.dumps({"writeKey": "wk_live", "messageId": "m", "userId": "u", "event": "e"})
    assert post(out, "/v1/track", with_key, auth=None)[0] == 200
    assert post(out, "/v1/track", b"{nope")[0] == 400
    assert post(out, "/v1/batch", b" " * 600_000)[0] == 413
    assert post(out, "/v1/nope", good)[0] == 404
    assert post(out, "/v1/screen", good)[0] == 400  # screen calls: rejected, dead-lettered (issue 21)
    assert len([r for r in out.sent if r.topic.endswith("-dlq")]) == 3
    status, payload = post(FakeOut(fail=True), "/v1/track", good)
    assert status == 503 and payload["code"] == "kafka_unavailable"


@pytest.mark.parametrize("endpoint", ["track", "page", "identify", "group", "alias"])
def test_every_segment_endpoint_accepts_its_call(endpoint: str) -> None:
    body = {"messageId": "m", "userId": "u", "event": "e", "groupId": "g", "previousId": "p"}
    (item,) = run(body, endpoint).items
    assert isinstance(item, Accepted), item


# -- hostile input: depth, item count, work before auth, keys in dead letters (issue 20) --------
def deep_batch(depth: int, write_key: str | None = None) -> bytes:
    """Three tracks, the middle one's properties nested ``depth`` objects deep (raw bytes: orjson
    cannot write more than 254 levels)."""
    deep = b'{"a":' * depth + b"1" + b"}" * depth
    middle = b'{"type":"track","messageId":"m1","anonymousId":"a1","event":"Deep","properties":' + deep + b"}"
    items = b",".join([orjson.dumps(track(0)), middle, orjson.dumps(track(2))])
    key = b'"writeKey":' + orjson.dumps(write_key) + b"," if write_key else b""
    return b"{" + key + b'"batch":[' + items + b"]}"


@pytest.mark.parametrize("depth", [220, 300, 1000, 1030, 5000, 60_000])
def test_a_deep_batch_item_is_rejected_alone_with_its_path(depth: int) -> None:
    """Past 1024 levels the JSON parser refuses the whole body: the too-deep part is cut by a
    scan of the bytes first, so still only that item is refused, by its path."""
    handled = run(deep_batch(depth))
    assert [type(i) for i in handled.items] == [Accepted, Rejected, Accepted]
    (bad,) = handled.rejected
    assert bad.index == 1 and bad.error.stage == "decode"
    assert str(bad.error.reasons[0]).startswith("$.properties" + ".a" * 30)
    assert "deeper than 32 levels" in str(bad.error)
    assert orjson.loads(bad.value)["messageId"] == "m1"  # the dead letter is readable JSON
    status, payload = response(handled)
    assert status == 400 and payload["accepted"] == 2


def test_a_batch_too_deep_to_parse_keeps_its_valid_items_and_no_key() -> None:
    handled = run(deep_batch(2000, write_key="wk_secret_abc"))
    assert handled.write_key == "wk_secret_abc"
    assert [type(i) for i in handled.items] == [Accepted, Rejected, Accepted]
    (bad,) = handled.rejected
    assert b"wk_secret_abc" not in bad.value and len(bad.value) < 1000  # the item, cut at the limit
    assert b"[cut: nested deeper than the limit; dict omitted]" in bad.value


def test_the_depth_scan_cuts_only_what_is_too_deep_and_leaves_strings_alone() -> None:
    from schemas.decode import cut_deeper_than

    body = b'{"s":"[[[{{{","a":[1,[2,[3,[4]]]],"b":{"c":{"d":{}}}}'
    assert cut_deeper_than(body, 10) is None  # nothing that deep
    cut = cut_deeper_than(body, 3)
    assert orjson.loads(cut) == {"s": "[[[{{{", "a": [1, [2, "[cut: nested deeper than the limit; list omitted]"]],
                                 "b": {"c": {"d": "[cut: nested deeper than the limit; dict omitted]"}}}
    assert cut_deeper_than(b'[' * 3000, 5) is None and cut_deeper_than(b']]' + b'[' * 30, 5) is None  # unbalanced
    ugly = b'{"batch":[' + b'[' * 2000 + b'"\\"' + b']' * 2000 + b']}'
    assert orjson.loads(cut_deeper_than(ugly, 4)) == {"batch": [[["[cut: nested deeper than the limit; list omitted]"]]]}


def test_a_deep_single_call_is_rejected() -> None:
    body = b'{"messageId":"m","userId":"u","event":"e","properties":' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}"
    (item,) = run(body, "track").items
    assert isinstance(item, Rejected) and "deeper than 32 levels" in str(item.error)


def test_too_many_items_is_413_and_nothing_is_accepted() -> None:
    handled = run({"batch": [track(i) for i in range(6)]}, limits=Limits(max_items=5))
    assert handled.too_large and handled.accepted == []
    status, payload = response(handled)
    assert status == 413 and "6 items; the limit is 5" in payload["message"]
    assert len(run({"batch": [track(i) for i in range(5)]}, limits=Limits(max_items=5)).accepted) == 5


def test_write_keys_are_redacted_from_dead_lettered_bodies() -> None:
    (bad,) = run(b'{"writeKey": "wk_se\\"cret", "batch": [nope').items
    assert isinstance(bad, Rejected) and b"wk_se" not in bad.value
    assert bad.value == b'{"writeKey": "[redacted]", "batch": [nope'
    (over,) = run(b'{"writeKey":"wk_secret","batch":[' + b" " * 3000 + b"]}",
                  limits=Limits(max_request_bytes=2048)).items
    assert b"wk_secret" not in over.value and b"[redacted]" in over.value


def test_a_write_key_cut_by_the_dead_letters_size_limit_is_redacted_too() -> None:
    """An oversized body's dead letter keeps its first ``max_event_bytes``: a cut inside the
    key's value left the key's start in the dead letter (no closing quote to match)."""
    body = b'{"batch":[' + b" " * 1000 + b'],"writeKey":"wk_secret_0123456789"}'
    cut = body.index(b"wk_secret") + 12  # the cut falls inside the key
    (over,) = run(body, limits=Limits(max_request_bytes=512, max_event_bytes=cut)).items
    assert isinstance(over, Rejected) and b"wk_sec" not in over.value
    assert over.value.endswith(b'"writeKey":"[redacted]"')


def test_unknown_keys_are_refused_before_the_body_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.collector import handling

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("the body was handled before authentication")

    monkeypatch.setattr(handling, "handle", no_parsing)
    monkeypatch.setattr(handling, "parse", no_parsing)
    out = FakeOut()
    zeros = b'{"batch":[' + b",".join([b"0"] * 200_000) + b"]}"
    assert post(out, "/v1/batch", zeros, auth="wrong")[0] == 401
    assert post(out, "/v1/batch", b'{"writeKey":"wrong",' + zeros[1:], auth=None)[0] == 401
    assert post(out, "/v1/batch", zeros, auth=None)[0] == 401
    assert out.sent == []


def test_a_body_write_key_still_authenticates_after_the_scan() -> None:
    out = FakeOut()
    status, payload = post(out, "/v1/batch", deep_batch(220, write_key="wk_live"), auth=None)
    assert status == 400 and payload["accepted"] == 2
    dead = [r for r in out.sent if r.topic.endswith("-dlq")]
    assert len(dead) == 1 and b"wk_live" not in dead[0].value


def test_an_integer_beyond_64_bits_rejects_only_its_item_with_its_path() -> None:
    """Issue 20: read as a float it would be stored rounded, silently."""
    items = [orjson.dumps(track(0)), orjson.dumps(track(1))[:-1] + b',"properties":{"amount":123456789012345678901234}}',
             orjson.dumps(track(2, properties={"id": "123456789012345678901234"}))]  # in a string: kept
    handled = run(b'{"batch":[' + b",".join(items) + b"]}")
    assert [type(i) for i in handled.items] == [Accepted, Rejected, Accepted]
    (bad,) = handled.rejected
    assert bad.index == 1 and [r.path for r in bad.error.reasons] == ["$.properties.amount"]
    assert "beyond 64 bits" in str(bad.error)
    (single,) = run(items[1], "track").items
    assert isinstance(single, Rejected) and single.error.reasons[0].path == "$.properties.amount"
    # in the batch's shared context: every item carries it, every item is refused
    shared = run(b'{"context":{"n":99999999999999999999999},"batch":[' + items[0] + b"]}")
    assert [r.error.reasons[0].path for r in shared.rejected] == ["$.context.n"]


def test_every_item_with_an_integer_beyond_64_bits_is_refused_however_many_come_before() -> None:
    """The scan for wide integers stopped at the body's first 100: in a batch whose first item
    carries 100 of them, the next item's was read as a float and accepted, rounded."""
    wide = b"123456789012345678901234"
    first = orjson.dumps(track(0))[:-1] + b',"properties":{"ids":[' + b",".join([wide] * 100) + b"]}}"
    second = orjson.dumps(track(1))[:-1] + b',"properties":{"amount":' + wide + b"}}"
    handled = run(b'{"batch":[' + first + b"," + second + b"]}")
    assert [type(i) for i in handled.items] == [Rejected, Rejected]
    assert handled.rejected[1].error.reasons[0].path == "$.properties.amount"
