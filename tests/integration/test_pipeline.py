"""The walking skeleton end to end: kafka-python → real broker → worker → chDB → `journeys`."""

from __future__ import annotations

import json

import orjson
import pytest

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
