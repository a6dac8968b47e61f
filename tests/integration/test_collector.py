"""The HTTP collector end to end: official Segment SDK / raw HTTP → collector → Kafka → worker → chDB."""

from __future__ import annotations

import base64
import json

import orjson
import pytest
import requests
from segment.analytics import Client

from tests.support.collector import Collector

pytestmark = pytest.mark.integration

KEY, SOURCE, ACCOUNT = "wk_test_live_5f1c", "website", "acct-initech"


@pytest.fixture
def stack(tracker_factory):
    tracker = tracker_factory().start()
    collector = Collector(tracker, {KEY: SOURCE}).start()
    yield tracker, collector
    collector.stop()


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_unmodified_segment_sdk_calls_are_stored(stack) -> None:
    tracker, collector = stack
    errors: list[Exception] = []
    sdk = Client(KEY, host=collector.url, sync_mode=True, on_error=lambda e, _: errors.append(e))
    gzip_sdk = Client(KEY, host=collector.url, sync_mode=True, gzip=True)
    sdk.identify("u-77", {"email": "peter@initech.example", "name": "Peter"}, message_id="sdk-identify")
    sdk.group("u-77", ACCOUNT, {"name": "Initech", "employees": 300}, message_id="sdk-group")
    sdk.track("u-77", "Demo Requested", {"plan": "enterprise"}, message_id="sdk-track")
    gzip_sdk.page("u-77", "Docs", "Pricing", {"path": "/pricing"}, message_id="sdk-page")
    assert not errors

    stats = tracker.wait_for_stored(events=4)
    assert stats["events"] == 4 and stats["dead_letters"] == 0
    rows = json.loads(tracker.journeys("timeline", ACCOUNT, "--format", "json").stdout)
    group = [r for r in rows if r["event_id"] == "sdk-group"]
    assert group and group[0]["event_type"] == "group"


def test_bad_requests_get_clear_answers_and_dead_letters(stack) -> None:
    tracker, collector = stack
    track = {"type": "track", "userId": "u-1", "event": "Viewed", "timestamp": "2026-10-01T10:00:00Z"}

    resp = requests.post(collector.url + "/v1/track", json=track, headers=auth("wk_unknown"), timeout=10)
    assert resp.status_code == 401 and resp.json()["success"] is False

    resp = requests.post(collector.url + "/v1/track", data=b'{"messageId": "m", ', headers=auth(), timeout=10)
    assert resp.status_code == 400
    assert resp.json()["rejected"][0]["reasons"][0].startswith("$: malformed JSON")

    resp = requests.post(collector.url + "/v1/track", json={**track, "messageId": "m-wrong", "event": 42},
                         headers=auth(), timeout=10)
    assert resp.status_code == 400
    assert resp.json()["rejected"] == [{"index": 0, "reasons": ["$.event: Input should be a valid string"]}]

    big = {"batch": [{**track, "messageId": f"m-big-{i}", "properties": {"pad": "x" * 20_000}} for i in range(30)]}
    resp = requests.post(collector.url + "/v1/batch", data=orjson.dumps(big), headers=auth(), timeout=10)
    assert resp.status_code == 413 and resp.json()["code"] == "payload_too_large"

    batch = {"batch": [{**track, "messageId": "m-good-1"}, {**track, "messageId": "m-bad", "timestamp": "soon"},
                       {**track, "messageId": "m-good-2"}], "sentAt": "2026-10-01T10:00:05Z",
             "writeKey": KEY}
    resp = requests.post(collector.url + "/v1/batch", data=orjson.dumps(batch), timeout=10)  # key in the body
    assert resp.status_code == 400
    body = resp.json()
    assert body["accepted"] == 2
    assert body["rejected"] == [{"index": 1, "reasons": ["$.timestamp: Input should be a valid datetime or date, "
                                                        "input is too short"]}]

    stats = tracker.wait_for_stored(events=2, dead_letters=4)
    assert stats["events"] == 2 and stats["dead_letters"] == 4
    dead = json.loads(tracker.journeys("dlq", "list", "--format", "json").stdout)
    assert {d["source_kind"] for d in dead} == {"collector"}
    assert all(d["source"].startswith(f"collector:{SOURCE}:") and KEY not in d["source"] for d in dead)
    reasons = [r for d in dead for r in d["reasons"]]
    assert any(r.startswith("$.timestamp: Input should be a valid datetime") for r in reasons)
    assert any(r.startswith("$: request body is") for r in reasons)
    assert any(r == "$.event: Input should be a valid string" for r in reasons)
