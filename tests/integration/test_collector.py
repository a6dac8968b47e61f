"""The HTTP collector end to end: official Segment SDK / raw HTTP → collector → Kafka → worker → chDB."""

from __future__ import annotations

import base64
import json

import orjson
import pytest
import requests
from kafka import KafkaConsumer, TopicPartition
from segment.analytics import Client

from schemas.decode import validate
from schemas.events import derived_id
from streams.collector.settings import key_id
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


def topic_records(tracker, name: str) -> list:
    """Every record on one of the tracker's topics (read from the beginning, no consumer group)."""
    topic = tracker.topic(name)
    consumer = KafkaConsumer(bootstrap_servers=tracker.bootstrap, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends, records = consumer.end_offsets(tps), []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=5000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def test_write_key_scopes_refuse_crm_records_from_a_browser_key(tracker_factory) -> None:
    """Issue 20: the public browser key posted a closed-won opportunity to /v1/crm and got 200;
    a forged CRM record without messageId also suppressed the real one (same derived id)."""
    browser, crm, other_crm = "wk_browser_71a9c2e04d", "wk_salesforce_72b8d1f3", "wk_gong_73c6e5a9b2d4"
    tracker = tracker_factory().start()
    collector = Collector(tracker, {
        browser: {"source": "website", "allow": ["segment"], "origins": ["https://www.initech.example"]},
        crm: {"source": "salesforce", "allow": ["crm"]},
        other_crm: {"source": "gong", "allow": ["crm"]},
    }).start()
    try:
        won = {"type": "opportunity", "opportunityId": "006-1", "crmAccountId": ACCOUNT, "action": "closed_won",
               "stage": "Won", "amount": "1000000.00", "currency": "EUR", "changedAt": "2026-10-20T16:45:00Z"}
        resp = requests.post(collector.url + "/v1/crm", json=won, headers=auth(browser), timeout=10)
        assert resp.status_code == 403 and resp.json()["code"] == "scope_not_allowed"
        resp = requests.post(collector.url + "/v1/crm", json={**won, "writeKey": browser}, timeout=10)
        assert resp.status_code == 403
        track = {"type": "track", "messageId": "m-web-1", "userId": "u-1", "event": "Viewed"}
        resp = requests.post(collector.url + "/v1/track", json=track, timeout=10,
                             headers={**auth(browser), "Origin": "https://evil.example"})
        assert resp.status_code == 403 and resp.json()["code"] == "origin_not_allowed"
        assert topic_records(tracker, "journeys-inbound-v1") == []  # a 403 is stored nowhere
        assert topic_records(tracker, "journeys-inbound-v1-dlq") == []

        # the same record from another CRM source first, then the real one: both arrive, apart
        for key in (other_crm, crm):
            resp = requests.post(collector.url + "/v1/crm", json=won, headers=auth(key), timeout=10)
            assert resp.status_code == 200, resp.text
        inbound = topic_records(tracker, "journeys-inbound-v1")
        tags = {dict(r.headers)["journeys.source"]: (dict(r.headers), orjson.loads(r.value)) for r in inbound}
        assert sorted(tags) == [b"gong", b"salesforce"]
        headers, record = tags[b"salesforce"]
        assert headers["journeys.write_key_id"] == key_id(crm).encode()
        assert record["messageId"] == derived_id(validate(dict(won)), "salesforce")
        assert tags[b"gong"][1]["messageId"] != record["messageId"]

        stats = tracker.wait_for_stored(events=2)
        assert stats["events"] == 2 and stats["dead_letters"] == 0
        rows = json.loads(tracker.journeys("timeline", ACCOUNT, "--format", "json").stdout)
        stored = {r["source"]: r["event_id"] for r in rows if r["event_type"] == "opportunity"}
        assert stored == {"salesforce": record["messageId"], "gong": tags[b"gong"][1]["messageId"]}
    finally:
        collector.stop()
