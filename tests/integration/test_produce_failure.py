"""A produce the broker refuses fails the batch (issue 20): the worker stops before it commits
past the record whose outputs were lost, and a restart after the cause is fixed delivers it —
instead of the old silent loss (the failure only logged, the offset committed)."""

from __future__ import annotations

import time

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from tests.support import events as ev

pytestmark = pytest.mark.integration


def committed(tracker, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=tracker.bootstrap, group_id=tracker.env["JOURNEYS_APP_ID"],
                             enable_auto_commit=False)
    try:
        return sum((consumer.committed(TopicPartition(topic, p)) or 0) for p in range(2))
    finally:
        consumer.close()


def test_a_refused_produce_stops_the_worker_before_it_commits_and_nothing_is_lost(tracker_factory) -> None:
    tracker = tracker_factory(JOURNEYS_TOPIC_PARTITIONS="1").start()
    admin = KafkaAdminClient(bootstrap_servers=tracker.bootstrap)
    events_topic = tracker.topic("journeys-receipts-v1")  # the ingest stage's output
    inbound = tracker.topic("journeys-inbound-v1")

    def max_bytes(value: str) -> None:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, events_topic,
                                            configs={"max.message.bytes": value})])

    small = [ev.page(h, user="pat", path="/docs") for h in range(3)]
    tracker.produce(ev.encode(small))
    tracker.wait_for_stored(events=3)
    max_bytes("2000")  # the ingest stage's output topic now refuses records over 2 KB
    big = ev.page(5, user="pat", path="/docs", properties={"notes": "n" * 8000})
    tracker.produce([orjson.dumps(big)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and tracker.proc.poll() is None:
        time.sleep(0.5)
    assert tracker.proc.poll() is not None, "the worker went on after the broker refused its output"
    assert tracker.proc.returncode == 70, tracker.log_tail()
    assert "MessageSizeTooLarge" in tracker.log_tail(200) or "RecordTooLarge" in tracker.log_tail(200)
    assert "n" * 200 not in tracker.log_tail(400), "the failed record's value is not logged"
    assert committed(tracker, inbound) <= 3, "the offset went past the record whose output was refused"
    max_bytes("1048588")  # the cause fixed: a restart delivers it
    tracker.proc = None
    tracker.start()
    tracker.wait_for_stored(events=4)
    admin.close()
