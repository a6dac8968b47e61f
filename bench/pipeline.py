"""End-to-end figures of one real worker (``python -m streams worker``, stream + store roles).

* throughput — N events produced as fast as possible; sustained events/s until the store's
  ``stats().events`` (distinct stored event ids) reaches N.
* latency — events paced at a fixed offered load (half the sustained rate). Method: each
  event's produce time is its Kafka CreateTime, which ingest stores as ``received_at`` and
  carries on the timeline topic. A sampler polls the worker group's committed offsets on the
  timeline topic every ``SAMPLE_S``; the store acks a block only after its insert returned,
  so an event is queryable no later than the first sample whose committed offset is past the
  event's timeline offset. latency = that sample time − CreateTime (same host clock): an
  upper bound, exact to the sample interval plus the commit interval (set low for the run).
  Faust commits a timeline offset only when every agent reading that topic acked it, so a slow
  journey agent shows up here too. Cross-check: the same sampler counts stored events; matching
  the k-th stored to the k-th produced (FIFO) gives a mean that does not depend on the order.
* event → alert — in the same run, each ``channel_bounce`` alert (the digital ↔ 1:1 switch the
  tracker exists to flag; the rule fires on the touch it is dated at) against the touch that
  raised it: the alert record's Kafka CreateTime (the journey stage's send) − that touch's
  ``received_at`` (its inbound CreateTime), the touch found by its event time among the run's
  timeline entries (:func:`alert_latencies`; a time two events share is skipped). Timer rules
  (missed handoff, stalled opportunity) fire late by design and are not counted.
* rss — VmRSS of the worker after each size step, per tracked (true, non-empty) account.
* restart — SIGTERM, a backlog produced while down, then the time from the new process's
  start to its API answering and to every event stored with zero consumer lag.
"""

from __future__ import annotations

import statistics
import threading
import time
from datetime import datetime
from itertools import islice
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from bench import harness
from bench.synth import SynthConfig, generate
from streams import packs
from tests.support.tracker import Tracker

SAMPLE_S = 0.1


class Feed:
    """Consecutive slices of one generated set; remembers the true accounts produced."""

    def __init__(self, cfg: SynthConfig) -> None:
        self._events = generate(cfg)
        self.accounts: set[str] = set()
        self.produced = 0

    def take(self, n: int) -> list[bytes]:
        out = []
        for s in islice(self._events, n):
            out.append(orjson.dumps(s.obj))
            if s.account:
                self.accounts.add(s.account)
        self.produced += len(out)
        return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def summary(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": pct(values, 0.5), "p99": pct(values, 0.99), "max": pct(values, 1.0),
            "mean": round(statistics.fmean(values), 3) if values else None}


def stored(tracker: Tracker) -> int:
    return int((tracker.stats() or {}).get("events", 0))


def throughput(tracker: Tracker, feed: Feed, n: int, timeout: float) -> dict[str, Any]:
    lines = feed.take(n)
    target = stored(tracker) + len(lines)
    began = time.perf_counter()
    _, produce_s = harness.produce_lines(tracker.bootstrap, tracker.topic("journeys-inbound-v1"), lines)
    deadline = began + timeout
    while stored(tracker) < target:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{target} events not stored within {timeout}s")
        time.sleep(0.2)
    seconds = time.perf_counter() - began
    return {"events": len(lines), "produce_s": round(produce_s, 3), "seconds": round(seconds, 3),
            "per_s": round(len(lines) / seconds, 1)}


class _Sampler(threading.Thread):
    """Every SAMPLE_S: wall time, the group's committed timeline offsets, stored event count."""

    def __init__(self, tracker: Tracker, topic: str) -> None:
        super().__init__(daemon=True)
        self.tracker, self.topic = tracker, topic
        self.group = tracker.groups()["store"]  # the store acks a block only after its insert
        self.samples: list[tuple[float, dict[int, int], int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.tracker.bootstrap)
        try:
            while not self.halt.is_set():
                offsets = admin.list_group_offsets(self.group).get(self.group, {})
                committed = {tp.partition: o.offset for tp, o in offsets.items() if tp.topic == self.topic}
                self.samples.append((time.time(), committed, stored(self.tracker)))
                self.halt.wait(SAMPLE_S)
        finally:
            admin.close()


def _read(bootstrap: str, topic: str, start: dict[int, int], end: dict[int, int]) -> list[Any]:
    """The records of ``topic`` in [start, end) per partition."""
    out: list[Any] = []
    left = {p: end[p] - start.get(p, 0) for p in end if end[p] > start.get(p, 0)}
    if not left:
        return out
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             consumer_timeout_ms=10_000)
    parts = [TopicPartition(topic, p) for p in left]
    consumer.assign(parts)
    for tp in parts:
        consumer.seek(tp, start.get(tp.partition, 0))
    for msg in consumer:
        if msg.offset < end[msg.partition]:
            left[msg.partition] -= 1
            out.append(msg)
        if all(v <= 0 for v in left.values()):
            break
    consumer.close()
    return out


def _timeline_records(bootstrap: str, topic: str, start: dict[int, int], end: dict[int, int]) -> list[tuple]:
    """(partition, offset, produce time in s, entry) of the stored (non-replay) entries in [start, end)."""
    out = []
    for msg in packs.unpacked(_read(bootstrap, topic, start, end)):  # a pack's entries: its offset and time
        entry = orjson.loads(msg.value)
        if not entry.get("replay"):
            out.append((msg.partition, msg.offset, datetime.fromisoformat(entry["received_at"]).timestamp(), entry))
    return out


def _ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def alert_latencies(entries: list[dict[str, Any]], alerts: list[tuple[float, dict[str, Any]]],
                    rule: str = "channel_bounce") -> list[float]:
    """Seconds from each touch's receipt to the ``rule`` alert dated at it: ``entries`` are
    timeline entries (``event_id``, ``event_time``, ``received_at``), ``alerts`` (alert record's
    CreateTime in s, alert) pairs. An alert is matched to the touch with its ``at`` as event time;
    a time two events share, or that no entry has, is skipped."""
    received: dict[int, tuple[set[str], float]] = {}
    for entry in entries:
        when = _ms(entry["event_time"])
        ids, at = received.get(when, (set(), float("inf")))
        received[when] = (ids | {entry["event_id"]}, min(at, datetime.fromisoformat(entry["received_at"]).timestamp()))
    out = []
    for sent, alert in alerts:
        match = received.get(_ms(alert["at"])) if alert.get("rule") == rule else None
        if match is not None and len(match[0]) == 1:
            out.append(round(sent - match[1], 4))
    return out


def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def latency(tracker: Tracker, feed: Feed, rate: float, seconds: float, timeout: float) -> dict[str, Any]:
    topic, alerts_topic = tracker.topic("journeys-timeline-v1"), tracker.topic("journeys-alerts-v1")
    lines = feed.take(max(1, int(rate * seconds)))
    # from a settled worker: the phase before ends when its events are stored, while the journey
    # stage and the store's refreshes may still be working off its burst, which the first second
    # of paced events waited behind (their alerts were the run's slowest: up to 0.9 s)
    base = stored(tracker)
    harness.wait_caught_up(tracker, base, timeout, settle=1.0)
    start = _end_offsets(tracker.bootstrap, topic)
    alerts_start = _end_offsets(tracker.bootstrap, alerts_topic)
    sampler = _Sampler(tracker, topic)
    sampler.start()
    try:
        _, produce_s = harness.produce_lines(tracker.bootstrap, tracker.topic("journeys-inbound-v1"), lines, rate=rate)
        harness.wait_caught_up(tracker, base + len(lines), timeout, settle=3 * SAMPLE_S)
    finally:
        sampler.halt.set()
        sampler.join()
    records = _timeline_records(tracker.bootstrap, topic, start, _end_offsets(tracker.bootstrap, topic))
    alerts = [(msg.timestamp / 1000, orjson.loads(msg.value)) for msg in
              _read(tracker.bootstrap, alerts_topic, alerts_start, _end_offsets(tracker.bootstrap, alerts_topic))]
    to_alert = alert_latencies([r[3] for r in records], alerts)
    per_event = []
    for partition, offset, sent, _ in records:
        seen = next((t for t, committed, _ in sampler.samples if committed.get(partition, -1) > offset), None)
        if seen is not None:
            per_event.append(seen - sent)
    sent_sorted = sorted(r[2] for r in records)
    fifo = []
    for k, sent in enumerate(sent_sorted, 1):
        seen = next((t for t, _, count in sampler.samples if count >= base + k), None)
        if seen is not None:
            fifo.append(seen - sent)
    return {"offered_per_s": round(rate, 1), "events": len(lines), "produce_s": round(produce_s, 2),
            "sample_interval_s": SAMPLE_S, "commit_interval_s": float(tracker.env["JOURNEYS_COMMIT_INTERVAL"]),
            "event_to_queryable_s": summary(per_event), "fifo_count_check_s": summary(fifo),
            "event_to_alert_s": {**summary(to_alert), "rule": "channel_bounce", "alerts": len(alerts)}}


def rss_steps(tracker: Tracker, feed: Feed, sizes: list[int], timeout: float) -> list[dict[str, Any]]:
    """Grow the produced set to each size (events); RSS and tracked accounts after each."""
    out = []
    for size in sizes:
        if size > feed.produced:
            lines = feed.take(size - feed.produced)
            harness.produce_lines(tracker.bootstrap, tracker.topic("journeys-inbound-v1"), lines)
            harness.wait_caught_up(tracker, feed.produced, timeout)
        kb = harness.worker_rss_kb(tracker.proc.pid)
        out.append({"events": feed.produced, "accounts": len(feed.accounts), "rss_mb": round(kb / 1024, 1),
                    "kb_per_account": round(kb / max(1, len(feed.accounts)), 1)})
    return out


def restart(tracker: Tracker, feed: Feed, backlog: int, timeout: float) -> dict[str, Any]:
    began = time.perf_counter()
    tracker.stop()
    stop_s = time.perf_counter() - began
    lines = feed.take(backlog)
    harness.produce_lines(tracker.bootstrap, tracker.topic("journeys-inbound-v1"), lines)
    began = time.perf_counter()
    tracker.start(wait=False)
    tracker.wait_until(lambda: tracker.stats() is not None, timeout, "the worker API")
    api_s = time.perf_counter() - began
    harness.wait_caught_up(tracker, feed.produced, timeout, settle=0)
    return {"stop_s": round(stop_s, 2), "backlog_events": len(lines), "to_api_s": round(api_s, 2),
            "to_caught_up_s": round(time.perf_counter() - began, 2)}
