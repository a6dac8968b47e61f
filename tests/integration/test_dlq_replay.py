"""``journeys dlq replay``: a dead letter whose problem was fixed (a larger future limit) is stored
after a replay; a still-invalid one is dead-lettered again; replays carry ``journeys.replay_of``."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

pytestmark = pytest.mark.integration
KEY = b"dev-replay"


def inbound_records(tracker) -> list:
    topic = tracker.topic("journeys-inbound-v1")
    consumer = KafkaConsumer(bootstrap_servers=tracker.bootstrap, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends, records = consumer.end_offsets(tps), []
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=5000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def test_replay_after_a_fix(tracker_factory) -> None:
    soon = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    future = orjson.dumps({"type": "track", "messageId": "m-future", "anonymousId": "dev-replay",
                           "event": "Scheduled", "timestamp": soon})
    hopeless = orjson.dumps({"type": "track", "messageId": "m-hopeless", "event": "No identity"})
    first = tracker_factory().start()
    first.produce([future, hopeless], key=KEY)
    first.wait_for_stored(events=0, dead_letters=2)

    dry = first.journeys("dlq", "replay", "--dry-run", "--format", "json")
    listed = json.loads(dry.stdout)
    assert len(listed) == 2 and {d["source_kind"] for d in listed} == {"kafka"}
    assert "2 dead letter(s) would be replayed" in dry.stderr
    only_future = json.loads(first.journeys("dlq", "replay", "--dry-run", "--format", "json",
                                            "--reason-contains", "IN THE FUTURE").stdout)
    assert len(only_future) == 1 and "in the future" in only_future[0]["reasons"][0]
    assert (first.stats() or {})["dead_letters"] == 2  # a dry run changes nothing
    first.stop()

    # the fix: a larger future limit; the original (committed) offsets are not reprocessed
    fixed = tracker_factory(JOURNEYS_MAX_FUTURE_SECONDS="86400").start()
    fixed.produce([orjson.dumps({"type": "track", "messageId": "m-sentinel", "anonymousId": "dev-replay",
                                 "event": "Sentinel"})], key=KEY)
    assert fixed.wait_for_stored(events=1)["events"] == 1

    out = fixed.journeys("dlq", "replay", "--reason-contains", "future")
    assert "replayed 1 dead letter(s)" in out.stdout
    assert fixed.wait_for_stored(events=2)["events"] == 2

    fixed.journeys("dlq", "replay", "--source-kind", "kafka", "--since", "1h")  # both again
    stats = fixed.wait_for_stored(events=2, dead_letters=3)
    assert stats["events"] == 2 and stats["dead_letters"] == 3  # m-future deduplicated, m-hopeless failed again

    ids = {d["dlq_id"] for d in listed}
    replays = [dict(r.headers).get("journeys.replay_of") for r in inbound_records(fixed)]
    replayed = [v.decode() for v in replays if v is not None]
    assert len(replayed) == 3 and set(replayed) == ids
    assert all(r.key == KEY for r in inbound_records(fixed))
