"""The store never skips a record silently: what it cannot read is dead-lettered (issue 20).

A record on a topic only the store reads (identity links) that is not our format, and a dead
letter whose reasons header is not JSON, both end as rows of ``dead_letters`` with a reason;
the worker keeps storing the events that follow.
"""

from __future__ import annotations

import json

import orjson
import pytest
from kafka import KafkaProducer

from tests.support import events as ev

pytestmark = pytest.mark.integration


def dead_letters(tracker) -> list[dict]:
    out = tracker.journeys("dlq", "list", "--format", "json")
    return json.loads(out.stdout or "[]")


def test_unreadable_records_reach_the_dead_letters_and_the_store_goes_on(tracker_factory) -> None:
    tracker = tracker_factory().start()
    producer = KafkaProducer(bootstrap_servers=tracker.bootstrap, acks="all")
    producer.send(tracker.topic("journeys-identity-links-v1"), key=b"device:x", value=b"\x00 not a link")
    producer.send(tracker.topic("journeys-inbound-v1-dlq"), key=b"k", value=b"{}",
                  headers=[("journeys.dlq.reasons", b"not json"), ("journeys.dlq.stage", b"validate")])
    producer.flush()
    producer.close()
    later = [ev.page(1, anon="t20-after"), ev.page(2, anon="t20-after")]
    tracker.produce([orjson.dumps(e) for e in later])
    tracker.wait_for_stored(len(later), dead_letters=2)
    rows = dead_letters(tracker)
    store = [r for r in rows if r["stage"] == "store"]
    assert len(store) == 1 and "identity_links" in store[0]["reasons"][0], rows
    assert any("unreadable reasons header" in r["reasons"][0] for r in rows), rows
    assert tracker.stats()["events"] == len(later)
