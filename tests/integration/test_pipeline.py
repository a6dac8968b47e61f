"""The walking skeleton end to end: kafka-python → real broker → worker → chDB → `journeys`."""

from __future__ import annotations

import json
import urllib.request

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration


def group_page(i: int) -> bytes:
    """A group call: it carries the account id itself."""
    return orjson.dumps({"type": "group", "messageId": f"m-{i:05d}", "userId": "u1", "groupId": "acme",
                         "timestamp": "2026-10-01T09:00:00Z"})


def test_events_flow_to_clickhouse_and_bad_ones_to_dead_letters(tracker_factory) -> None:
    tracker = tracker_factory().start()
    good = [group_page(i) for i in range(20)]
    bad = [b"not json", b'{"type":"track","messageId":"x","event":"e"}']
    tracker.produce(good[:10] + bad + good[10:])
    tracker.wait_for_stored(events=20, dead_letters=2)

    out = tracker.journeys("timeline", "acme", "--format", "json")
    rows = json.loads(out.stdout)
    assert sorted(r["event_id"] for r in rows) == sorted(f"m-{i:05d}" for i in range(20))

    dead = json.loads(tracker.journeys("dlq", "list", "--format", "json").stdout)
    reasons = sorted(r for d in dead for r in d["reasons"])
    assert reasons[0] == "$: Value error, either anonymousId or userId is required"
    assert reasons[1].startswith("$: malformed JSON: ")
    assert {d["source_kind"] for d in dead} == {"kafka"}
    assert all(d["source"].startswith(tracker.topic("journeys-inbound-v1/")) for d in dead)

    # the CLI works without the worker too: it opens the embedded store directly
    tracker.stop()
    table = tracker.journeys("timeline", "acme").stdout
    assert "m-00019" in table and "m-00000" in table


def test_restart_mid_stream_loses_nothing_and_shows_no_duplicate(tracker_factory) -> None:
    tracker = tracker_factory().start()
    events = [group_page(i) for i in range(3000)]
    tracker.produce(events[:1500])
    tracker.wait_until(lambda: (tracker.stats() or {}).get("events", 0) > 200, 60, "some events stored")
    tracker.kill9()  # no graceful shutdown: uncommitted offsets will be redelivered
    tracker.produce(events[1500:])
    tracker.start()
    stats = tracker.wait_for_stored(events=3000, timeout=120)
    assert stats["events"] == 3000
    rows = json.loads(tracker.journeys("timeline", "acme", "--format", "json", "--limit", "10000").stdout)
    ids = [r["event_id"] for r in rows]
    assert len(ids) == len(set(ids)) == 3000


def _journeys_metric(tracker, stage: str, outcome: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{tracker.port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == "journeys_events_out_total"
               and s.labels == {"stage": stage, "outcome": outcome, "tenant": tracker.tenant})


RESENDS = (
    {"type": "group", "messageId": "dup-1", "userId": "u1", "groupId": "acme", "timestamp": "2026-10-01T09:00:00Z"},
    {"type": "group", "messageId": "dup-1", "userId": "u1", "groupId": "acme", "timestamp": "2026-10-01T09:00:00Z"},
    # the same id naming another account, with an earlier time
    {"type": "group", "messageId": "dup-1", "userId": "u9", "groupId": "globex", "timestamp": "2026-09-01T09:00:00Z"},
    {"type": "group", "messageId": "dup-2", "userId": "u8", "groupId": "initech", "timestamp": "2026-10-01T09:00:00Z"},
)


def test_a_re_sent_id_naming_another_account_stops_at_the_dedupe_stage(tracker_factory) -> None:
    """B4: the first receipt wins for the journeys too, not only in the analysts' views."""
    tracker = tracker_factory().start()
    tracker.produce([orjson.dumps(e) for e in RESENDS], key=b"in-order")
    tracker.wait_until(lambda: _journeys_metric(tracker, "dedupe", "resent") == 2, 60, "both re-sends dropped")
    stats = tracker.wait_for_stored(events=2)
    assert stats["rows"] == 2, stats  # no second row for dup-1, in either account
    assert tracker.api("/table/journeys/acme/") is not None  # the first receipt's account counts it
    assert tracker.api("/table/journeys/initech/") is not None
    assert tracker.api("/table/journeys/globex/") is None  # the re-send never reached a journey
    rows = json.loads(tracker.journeys("timeline", "acme", "--format", "json").stdout)
    assert [r["event_id"] for r in rows] == ["dup-1"]


def test_without_the_dedupe_stage_re_sends_reach_the_other_account(tracker_factory) -> None:
    """JOURNEYS_DEDUPE_DAYS=0, the documented trade-off: no dedupe stage; a re-send naming another
    account reaches the store and that account's journey and timeline (B4 as it was)."""
    tracker = tracker_factory(JOURNEYS_DEDUPE_DAYS="0").start()
    tracker.produce([orjson.dumps(e) for e in RESENDS], key=b"in-order")
    tracker.wait_until(lambda: (tracker.stats() or {}).get("rows", 0) >= 3, 60, "the re-sends stored")
    assert tracker.stats()["events"] == 2  # still one per id in the store's own count
    assert _journeys_metric(tracker, "dedupe", "first") == 0  # no dedupe stage in this worker
    assert tracker.api("/table/journeys/globex/") is not None
    globex = json.loads(tracker.journeys("timeline", "globex", "--format", "json").stdout)
    assert [r["event_id"] for r in globex] == ["dup-1"]
