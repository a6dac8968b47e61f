"""Run a real tracker worker for reports and benchmarks: broker, producing, waiting, RSS.

The worker is ``tests.support.tracker.Tracker`` (``python -m streams worker`` on isolated
topics, consumer group and chDB store); it works outside pytest too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from streams import topics as t
from streams.cli.replaying import key_of
from tests.support.tracker import ROOT, Tracker, broker_reachable

KAFKA_SH = ROOT / "dev/kafka/kafka.sh"
PIPELINE_TOPICS = {"stream": (t.INBOUND, t.RECEIPTS, t.EVENTS, t.PERSONS, t.TIMELINE),
                   "store": (t.INBOUND_DLQ, t.TIMELINE, t.IDENTITY_LINKS)}
"""What each role must have committed for a worker to be caught up (by the role's group)."""


def ensure_broker(bootstrap: str) -> bool:
    """Start the dev broker if none answers; True if this call started it (stop it after)."""
    if broker_reachable(bootstrap):
        return False
    env = dict(os.environ, JOURNEYS_KAFKA_BOOTSTRAP=bootstrap, PYTHON=sys.executable)
    subprocess.run([str(KAFKA_SH), "start"], check=True, env=env, timeout=600)
    if not broker_reachable(bootstrap):
        raise RuntimeError(f"no Kafka broker at {bootstrap}")
    return True


def stop_broker() -> None:
    subprocess.run([str(KAFKA_SH), "stop"], check=False, timeout=120)


def make_tracker(bootstrap: str, work: Path, prefix: str, **env: str) -> Tracker:
    work.mkdir(parents=True, exist_ok=True)
    return Tracker(bootstrap, work, prefix, extra_env=env, index=0)


def producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024,
                         max_request_size=4 * 1024 * 1024)


def produce_lines(bootstrap: str, topic: str, lines: Iterable[bytes], *, rate: float | None = None,
                  transform: Callable[[bytes], bytes] | None = None) -> tuple[int, float]:
    """Send every line (keyed like ``journeys replay``); optionally paced at ``rate`` events/s.

    Returns (count, seconds until the broker acknowledged the last one).
    """
    prod = producer(bootstrap)
    sent = 0
    began = time.perf_counter()
    try:
        for line in lines:
            if rate:
                due = began + sent / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            value = transform(line) if transform else line
            prod.send(topic, key=key_of(line), value=value)
            sent += 1
        prod.flush()
        return sent, time.perf_counter() - began
    finally:
        prod.close()


class LagProbe:
    """Messages consumer groups have not committed yet on their topics (one admin connection);
    ``reads``: each group's topic names."""

    def __init__(self, bootstrap: str, reads: dict[str, Iterable[str]]) -> None:
        self.reads = {group: list(names) for group, names in reads.items()}
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap)

    def lag(self) -> int | None:
        """None while the topics or the groups' offsets are not there yet."""
        lag = 0
        for group, names in self.reads.items():
            parts = [TopicPartition(name, p) for name in names
                     for p in (self.consumer.partitions_for_topic(name) or ())]
            if not parts:
                return None
            committed = self.admin.list_group_offsets(group).get(group, {})
            ends = self.consumer.end_offsets(parts)
            for tp in parts:
                done = committed.get(tp)
                lag += ends[tp] - (done.offset if done is not None and done.offset >= 0 else 0)
        return lag

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()


def wait_caught_up(tracker: Tracker, events: int, timeout: float, settle: float = 1.0) -> float:
    """Wait until ``events`` are stored and the worker committed every pipeline topic; seconds."""
    began = time.perf_counter()
    tracker.wait_for_stored(events=events, timeout=timeout)
    reads: dict[str, set[str]] = {}
    for role, group in tracker.groups().items():
        reads.setdefault(group, set()).update(tracker.topic(spec.name) for spec in PIPELINE_TOPICS[role])
    left = max(30.0, timeout - (time.perf_counter() - began))
    probe = LagProbe(tracker.bootstrap, reads)
    try:
        tracker.wait_until(lambda: probe.lag() == 0, left, "zero consumer lag")
    finally:
        probe.close()
    time.sleep(settle)
    return time.perf_counter() - began


def rss_kb(pid: int) -> int:
    """VmRSS of a process in kB (from /proc; psutil is not a dependency)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_rss_kb(pid: int) -> int:
    """VmRSS of a worker in kB: its process and its children (the stream role's process when one
    ``journeys worker`` runs two, ``streams.processes``)."""
    from streams.processes import children

    return rss_kb(pid) + sum(rss_kb(child) for child in children(pid))


def default_bootstrap() -> str:
    return os.environ.get("JOURNEYS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Remove a run's isolated topics (and its Faust changelog/repartition topics)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        names = [name for name in admin.list_topics() if name.startswith(prefix)]
        if names:
            admin.delete_topics(names)
    finally:
        admin.close()
