"""Hostile input on the real stack (issue 20): one bad record never stops the pipeline.

A /v1/batch whose middle item is nested 220 / 300 levels deep, a deep record straight into the
inbound topic, and an unreadable record straight into the device stage's topic: the worker stays
live, the valid events are stored, each bad record is dead-lettered with its reason, and later
events still flow. And a long analyst read does not stall the writer.
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.request
from urllib.parse import quote

import orjson
import pytest
import requests

from tests.support.collector import Collector

pytestmark = pytest.mark.integration

KEY, SOURCE = "wk_test_hostile_9a2e", "website"


def auth() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}


def track(message_id: str, **extra: object) -> bytes:
    return orjson.dumps({"type": "track", "messageId": message_id, "anonymousId": f"dev-{message_id}",
                         "event": "Viewed", "timestamp": "2026-10-01T10:00:00Z", **extra})


def deep_track(message_id: str, depth: int) -> bytes:
    nested = b'{"a":' * depth + b"1" + b"}" * depth  # by hand: orjson cannot write 254+ levels
    return track(message_id)[:-1] + b',"properties":' + nested + b"}"


def live(tracker) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{tracker.port}/health/live", timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_deep_and_unreadable_records_are_dead_lettered_and_the_pipeline_goes_on(tracker_factory) -> None:
    tracker = tracker_factory().start()
    collector = Collector(tracker, {KEY: SOURCE}).start()
    try:
        for n, depth in enumerate((220, 300)):
            body = b'{"batch":[' + b",".join([track(f"ok-{n}-a"), deep_track(f"deep-{n}", depth),
                                              track(f"ok-{n}-b")]) + b"]}"
            resp = requests.post(collector.url + "/v1/batch", data=body, headers=auth(), timeout=10)
            assert resp.status_code == 400, resp.text
            payload = resp.json()
            assert payload["accepted"] == 2 and payload["rejected"][0]["index"] == 1
            assert "deeper than 32 levels" in payload["rejected"][0]["reasons"][0]

        tracker.produce([deep_track("deep-kafka", 220)])  # straight into the inbound topic
        tracker.produce([b"{not a timeline entry"], topic="journeys-events-v1", key=b"dev-x")  # past ingest
        tracker.produce([track("later-1"), track("later-2")])

        stats = tracker.wait_for_stored(events=6, dead_letters=4)
        assert stats["events"] == 6 and stats["dead_letters"] == 4
        assert live(tracker) == 200, tracker.log_tail()
        dead = tracker.api("/api/v1/dead-letters")["dead_letters"]
        by_stage: dict[str, list[dict]] = {}
        for d in dead:
            by_stage.setdefault(d["stage"], []).append(d)
        assert len(by_stage["decode"]) == 3
        assert all(any("deeper than 32 levels" in r for r in d["reasons"]) for d in by_stage["decode"])
        (unreadable,) = by_stage["identity-devices"]
        assert unreadable["reasons"][0].startswith("$: identity-devices failed on this record: ValidationError")

        # and later requests still flow through the collector
        resp = requests.post(collector.url + "/v1/batch", data=b'{"batch":[' + track("later-3") + b"]}",
                             headers=auth(), timeout=10)
        assert resp.status_code == 200
        assert tracker.wait_for_stored(events=7, dead_letters=4)["events"] == 7
        assert live(tracker) == 200
    finally:
        collector.stop()


def test_a_context_copied_into_many_items_is_refused_whole_not_stored_as_megabytes(tracker_factory) -> None:
    """Issue 20's fan-out: a 30 KB batch ``context`` with 500 minimal items would be 15 MB of
    events; past JOURNEYS_COLLECTOR__MAX_EXPANDED_BYTES (4 MiB) it is one 413 and one dead letter."""
    tracker = tracker_factory().start()
    collector = Collector(tracker, {KEY: SOURCE}).start()
    try:
        items = b",".join(orjson.dumps({"type": "track", "messageId": f"f{i}", "anonymousId": "a", "event": "e"})
                          for i in range(500))
        body = b'{"context":' + orjson.dumps({"pad": "x" * 30_000}) + b',"batch":[' + items + b"]}"
        resp = requests.post(collector.url + "/v1/batch", data=body, headers=auth(), timeout=30)
        assert resp.status_code == 413, resp.text
        payload = resp.json()
        assert payload["accepted"] == 0 and payload["rejected_count"] == 1
        assert "JOURNEYS_COLLECTOR__MAX_EXPANDED_BYTES" in payload["message"]

        resp = requests.post(collector.url + "/v1/batch", data=b'{"batch":[' + track("after-fan-out") + b"]}",
                             headers=auth(), timeout=10)
        assert resp.status_code == 200
        stats = tracker.wait_for_stored(events=1, dead_letters=1)
        assert stats["events"] == 1 and stats["dead_letters"] == 1
        (letter,) = tracker.api("/api/v1/dead-letters")["dead_letters"]
        assert "MAX_EXPANDED_BYTES" in " ".join(letter["reasons"])
    finally:
        collector.stop()


def test_a_burst_over_the_key_rate_gets_429_and_a_slow_body_408(tracker_factory) -> None:
    """A tiny configured rate (burst 3, then one request per 100 s): a burst of real requests
    from one key gets 429 with Retry-After after the third; another key is not held up. A body
    that stops arriving is answered 408 after the read timeout. (No worker needed: the answers
    are the collector's.)"""
    tracker = tracker_factory(JOURNEYS_COLLECTOR__RATE_LIMIT_PER_SECOND="0.01",
                              JOURNEYS_COLLECTOR__RATE_LIMIT_BURST="3",
                              JOURNEYS_COLLECTOR__READ_TIMEOUT_SECONDS="1")
    other = "wk_test_hostile_other_77c1"
    collector = Collector(tracker, {KEY: SOURCE, other: "crm"}).start()
    try:
        answers = [requests.post(collector.url + "/v1/track", data=track(f"burst-{i}"), headers=auth(), timeout=10)
                   for i in range(6)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429, 429], [a.text for a in answers]
        assert all(int(a.headers["Retry-After"]) >= 1 for a in answers[3:])
        assert answers[3].json()["code"] == "rate_limited"
        other_auth = {"Authorization": "Basic " + base64.b64encode(f"{other}:".encode()).decode()}
        assert requests.post(collector.url + "/v1/track", data=track("other-key"), headers=other_auth,
                             timeout=10).status_code == 200

        with socket.create_connection(("127.0.0.1", collector.port), timeout=30) as conn:
            conn.sendall(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nContent-Type: text/plain\r\n"
                         + b"Authorization: Basic " + base64.b64encode(f"{other}:".encode()) + b"\r\n\r\n{\"type\"")
            answer = conn.recv(4096)  # the rest of the body never comes
        assert answer.startswith(b"HTTP/1.1 408"), answer
    finally:
        collector.stop()


def dead_letter_values(tracker) -> list[bytes]:
    """Every value on the dead-letter topic (what the store writes as the dead letter's payload)."""
    from kafka import KafkaConsumer, TopicPartition

    topic = tracker.topic("journeys-inbound-v1-dlq")
    consumer = KafkaConsumer(bootstrap_servers=tracker.bootstrap, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends, values = consumer.end_offsets(tps), []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=5000).values():
                values.extend(r.value for r in batch)
        return values
    finally:
        consumer.close()


def test_too_deep_to_parse_costs_one_item_no_dead_letter_keeps_a_key_and_timelines_page(
        tracker_factory, tmp_path) -> None:
    """Issue #20: a batch item nested past the JSON parser's 1024 levels is dead-lettered alone
    (its batch's valid items stored); a bad record with a ``writeKey`` straight on the inbound
    topic or through ``journeys import`` is dead-lettered with the key redacted and every other
    byte kept; an account's timeline pages through the API and the CLI, each event once, in order."""
    from tests.support.events import call, encode

    tracker = tracker_factory().start()
    collector = Collector(tracker, {KEY: SOURCE}).start()
    try:
        for n, depth in enumerate((2_000, 60_000)):  # past orjson's 1024 levels
            body = b'{"batch":[' + b",".join([track(f"deep-ok-{n}-a"), deep_track(f"too-deep-{n}", depth),
                                              track(f"deep-ok-{n}-b")]) + b"]}"
            resp = requests.post(collector.url + "/v1/batch", data=body, headers=auth(), timeout=30)
            assert resp.status_code == 400, resp.text
            payload = resp.json()
            assert payload["accepted"] == 2 and [r["index"] for r in payload["rejected"]] == [1], payload
            assert payload["rejected"][0]["reasons"][0].startswith("$.properties.a.a.a")
            assert "deeper than 32 levels" in payload["rejected"][0]["reasons"][0]

        secret = "wk_live_3f9a_never_store_me"
        on_kafka = (b'{"type":"track","writeKey":"' + secret.encode() + b'","messageId":"kafka-bad",'
                    b'"event":"No identity","timestamp":"2026-10-01T10:00:00Z"}')
        tracker.produce([on_kafka])
        imported = (b'{"type":"track","messageId":"import-bad","event":"No identity",'
                    b'"writeKey" : "' + secret.encode() + b'","timestamp":"2026-10-01T10:00:00Z"}')
        path = tmp_path / "with-key.jsonl"
        path.write_bytes(track("import-ok") + b"\n" + imported + b"\n")
        out = tracker.journeys("import", str(path), check=False)
        assert out.returncode == 1, out.stdout + out.stderr  # 1: some rows rejected (dead-lettered)

        account = "acme-paged"
        calls = [call(h, f"p{h}@acme-paged.example", account=account) for h in (1, 2, 2, 3, 5, 8, 8)]
        tracker.produce(encode(calls))

        stats = tracker.wait_for_stored(events=4 + 1 + len(calls), dead_letters=4)
        assert stats["events"] == 4 + 1 + len(calls) and stats["dead_letters"] == 4, stats
        assert live(tracker) == 200, tracker.log_tail()

        values = dead_letter_values(tracker)
        assert not any(secret.encode() in v for v in values)
        assert on_kafka.replace(b'"' + secret.encode() + b'"', b'"[redacted]"') in values  # else byte-identical
        assert imported.replace(b'"' + secret.encode() + b'"', b'"[redacted]"') in values
        deep = [v for v in values if b"too-deep-" in v]
        assert len(deep) == 2 and all(b"[cut: nested deeper than the limit" in v for v in deep)
        dead = tracker.api("/api/v1/dead-letters")["dead_letters"]
        assert sum(any("deeper than 32 levels" in r for r in d["reasons"]) for d in dead) == 2

        # the timeline, a page of 3 at a time: through the API (next / after) ...
        whole = tracker.api(f"/api/v1/timeline/{account}")
        assert "next" not in whole and len(whole["events"]) == len(calls)
        pages, after = [], ""
        while True:
            page = tracker.api(f"/api/v1/timeline/{account}?limit=3" + (f"&after={quote(after)}" if after else ""))
            pages.append(page["events"])
            after = page.get("next")
            if after is None:
                break
        assert [len(p) for p in pages] == [3, 3, 1]
        assert [e["event_id"] for p in pages for e in p] == [e["event_id"] for e in whole["events"]]
        # ... and the CLI (--after, the next cursor said on stderr)
        first = tracker.journeys("timeline", account, "--limit", "4", "--format", "json")
        assert [e["event_id"] for e in json.loads(first.stdout)] == [e["event_id"] for e in whole["events"][:4]]
        cursor = first.stderr.split("--after ")[-1].strip().strip("'")
        rest = tracker.journeys("timeline", account, "--limit", "4", "--after", cursor, "--format", "json")
        assert [e["event_id"] for e in json.loads(rest.stdout)] == [e["event_id"] for e in whole["events"][4:]]
        assert "More events" not in rest.stderr
        bad = tracker.journeys("timeline", account, "--after", "nonsense", check=False)
        assert bad.returncode == 2 and "Invalid value for --after: must be a cursor" in bad.stderr
    finally:
        collector.stop()


def test_a_long_analyst_read_does_not_stall_the_writer(tracker_factory) -> None:
    """Issue 20, "reads stall writes": with the embedded store, API queries shared the writer's
    connection and lock. A read that runs for seconds (through the worker's SQL endpoint, up to
    its time cap) is in flight while new events arrive: they are stored before it ends."""
    import threading
    import time

    tracker = tracker_factory(JOURNEYS_API_QUERY_SECONDS="25").start()
    tracker.produce([track("before-read")])
    tracker.wait_for_stored(events=1)
    answer: dict[str, object] = {}

    def long_read() -> None:
        started = time.monotonic()
        answer["out"] = tracker.journeys("sql", "SELECT sum(number) FROM numbers(100000000000)", check=False)
        answer["seconds"] = time.monotonic() - started

    reader = threading.Thread(target=long_read)
    reader.start()
    try:
        time.sleep(3)  # the read is running in the worker
        assert reader.is_alive(), f"the read was meant to outlast the writes: {answer}"
        tracker.produce([track(f"during-read-{i}") for i in range(5)])
        tracker.wait_for_stored(events=6, timeout=60)
        assert reader.is_alive(), "stored only after the read ended: the read stalled the writer"
    finally:
        reader.join(timeout=120)
    out = answer["out"]  # answered, or stopped at the cap with the setting named
    assert out.returncode == 0 or "JOURNEYS_API_QUERY_SECONDS" in out.stdout + out.stderr, out
    assert answer["seconds"] < 60
    assert live(tracker) == 200
