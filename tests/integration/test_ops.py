"""Operating a real worker: /metrics, /health/live, /health/ready, JSON logs and `journeys doctor`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.tracker import ROOT, Tracker

pytestmark = pytest.mark.integration

GOOD, BAD_JSON, BAD_IDS = 300, 3, 2


def status_of(tracker: Tracker, path: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{tracker.port}{path}", timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def error_body(tracker: Tracker, path: str) -> dict:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{tracker.port}{path}", timeout=5)
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())
    raise AssertionError(f"{path} answered 2xx")


def scrape(tracker: Tracker) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{tracker.port}/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    found = [s for family in text_string_to_metric_families(text) for s in family.samples]
    # every series carries the worker's tenant (its prefix, less the "-"): checked here, then left out
    tenant = tracker.tenant
    assert found and all(s.labels.get("tenant") == tenant for s in found), [s for s in found[:5]]
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "tenant"))): s.value for s in found}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def matching(samples: dict, name: str, **labels: str) -> dict[tuple, float]:
    return {k: v for k, v in samples.items() if k[0] == name and set(labels.items()) <= set(k[1])}


def page(i: int) -> bytes:
    return orjson.dumps({"type": "group", "messageId": f"ops-{i:05d}", "userId": f"u{i % 7}", "groupId": "acme",
                         "timestamp": "2026-10-01T09:00:00Z"})


def test_metrics_health_logs_and_doctor_on_a_running_worker(tracker_factory) -> None:
    tracker = tracker_factory(JOURNEYS_LOG_FORMAT="json")
    tracker.start(wait=False)

    # readiness, polled from process start: 503 until partitions are assigned and tables recovered
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not seen or seen[-1] != 200):
        assert tracker.proc is not None and tracker.proc.poll() is None, tracker.log_tail()
        status = status_of(tracker, "/health/ready")
        if status is not None:
            seen.append(status)
        time.sleep(0.1)
    assert seen and seen[-1] == 200, f"never ready: {seen[-5:]}\n{tracker.log_tail()}"
    assert 503 in seen and set(seen) <= {200, 503}, seen
    assert seen.index(200) > seen.index(503)
    ready = tracker.api("/health/ready")
    assert ready["ready"] is True and ready["not_ready"] == [] and ready["assigned_partitions"] > 0
    assert status_of(tracker, "/health/live") == 200
    assert tracker.api("/health/live") == {"live": True}
    schema = tracker.api("/api/v1/schema")
    assert schema["pending"] == [] and schema["applied"][-1] == schema["latest"]

    bad = [b"not json"] * BAD_JSON + [orjson.dumps({"type": "track", "messageId": f"x{i}", "event": "e"})
                                      for i in range(BAD_IDS)]
    tracker.produce([page(i) for i in range(GOOD)] + bad)
    tracker.wait_for_stored(events=GOOD, dead_letters=BAD_JSON + BAD_IDS, timeout=120)

    samples = scrape(tracker)
    deadline = time.monotonic() + 30  # stored, then re-resolved: the last refresh may still run
    while (value(samples, "journeys_store_refresh_events_sum") or 0) < GOOD and time.monotonic() < deadline:
        time.sleep(0.2)
        samples = scrape(tracker)
    assert value(samples, "journeys_events_in_total", stage="ingest") == GOOD + BAD_JSON + BAD_IDS
    assert value(samples, "journeys_events_out_total", stage="ingest", outcome="accepted") == GOOD
    assert value(samples, "journeys_events_out_total", stage="ingest", outcome="rejected") == BAD_JSON + BAD_IDS
    assert value(samples, "journeys_events_in_total", stage="identity-persons") == GOOD
    # every record ingest took came in one of its batches, counted in the batch-size histogram
    assert value(samples, "journeys_stream_batch_records_sum", stage="ingest") == GOOD + BAD_JSON + BAD_IDS
    assert 1 <= value(samples, "journeys_stream_batch_records_count", stage="ingest") <= GOOD + BAD_JSON + BAD_IDS
    assert value(samples, "journeys_events_out_total", stage="store", outcome="timeline") >= GOOD
    dead = matching(samples, "journeys_dead_letters_total")
    assert sum(dead.values()) == BAD_JSON + BAD_IDS
    assert value(samples, "journeys_dead_letters_total", source_kind="kafka", stage="decode", reason="$") == BAD_JSON
    assert all(dict(k[1])["reason"].startswith("$") for k in dead)
    assert value(samples, "journeys_sink_insert_seconds_count", table="timeline") > 0
    assert value(samples, "journeys_sink_insert_seconds_bucket", table="timeline", le="+Inf") > 0
    assert value(samples, "journeys_sink_batch_rows_sum", table="timeline") >= GOOD
    # every stored event was re-resolved (event_resolution) in some refresh, each timed
    assert value(samples, "journeys_store_refresh_events_sum") >= GOOD
    assert value(samples, "journeys_store_refresh_seconds_count") == value(samples, "journeys_store_refresh_events_count") > 0
    inbound_lag = matching(samples, "journeys_consumer_lag", topic=tracker.topic("journeys-inbound-v1"))
    assert inbound_lag and all(0 <= v <= GOOD + BAD_JSON + BAD_IDS for v in inbound_lag.values())
    assert value(samples, "journeys_table_rows", table="timeline") >= GOOD
    assert value(samples, "journeys_store_memory_bytes", kind="MemoryTracking") > 0  # the embedded engine's own
    assert value(samples, "journeys_store_memory_bytes", kind="MarkCacheBytes") >= 0
    # both allocators of the process: glibc's (Python, RocksDB, Kafka) and the embedded engine's jemalloc
    assert value(samples, "journeys_malloc_bytes", allocator="glibc", kind="in_use") > 10 * 1024 * 1024
    assert value(samples, "journeys_malloc_bytes", allocator="glibc", kind="free_held") >= 0
    je_used = value(samples, "journeys_malloc_bytes", allocator="jemalloc", kind="in_use")
    je = {kind: value(samples, "journeys_malloc_bytes", allocator="jemalloc", kind=kind)
          for kind in ("active", "metadata", "dirty", "tcache", "resident")}
    assert 0 < je_used <= je["active"] <= je["resident"]
    assert 0 < je["metadata"] and 0 <= je["dirty"] and 0 <= je["tcache"]
    # every table partition's RocksDB shares one budget (default 64 MiB), memtables included; the
    # cap is soft (pinned blocks and memtables may overshoot it a little, writers never stall)
    assert 0 < value(samples, "journeys_table_memory_bytes", kind="memtables") \
        <= value(samples, "journeys_table_memory_bytes", kind="cache") <= 1.5 * 64 * 1024 * 1024
    with urllib.request.urlopen(f"http://127.0.0.1:{tracker.port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    for name in ("journeys_alerts_fired", "journeys_alerts_delivered", "journeys_alerts_failed",
                 "journeys_sink_insert_retries", "journeys_agent_crashes"):
        assert f"# HELP {name}" in text  # declared, even before the first increment

    # structured logs: one JSON object per line (Faust's start-up banner aside)
    records = [json.loads(line) for line in tracker.log_path.read_text().splitlines() if line.startswith("{")]
    assert len(records) > 10
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)

    doctor = tracker.journeys("doctor", "--timeout", "10", check=False)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert " 0 FAIL" in doctor.stdout.splitlines()[-1]
    assert not any("│ FAIL" in line for line in doctor.stdout.splitlines()), doctor.stdout
    assert "co-partitioning" in doctor.stdout and "schema version" in doctor.stdout

    env = dict(tracker.env, JOURNEYS_KAFKA_BOOTSTRAP="127.0.0.1:1")
    started = time.monotonic()
    wrong = subprocess.run([sys.executable, "-m", "streams", "doctor", "--timeout", "2"], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert any("broker reachable" in line and "FAIL" in line for line in wrong.stdout.splitlines()), wrong.stdout
    assert "ECONNREFUSED" in wrong.stdout, wrong.stdout  # the last connection error, not just "timeout"
    assert time.monotonic() - started < 45

    # a record an agent cannot handle (here: garbage on an internal topic) no longer stops it: the
    # guard (streams.agents.guarded) dead-letters that record and the agent goes on, still live
    dead_before = (tracker.stats() or {}).get("dead_letters", 0)
    tracker.produce([b"garbage, not a timeline entry"], topic="journeys-events-v1", key=b"device-x")
    tracker.wait_until(lambda: (tracker.stats() or {}).get("dead_letters", 0) > dead_before, 60,
                       "the garbage record to be dead-lettered")
    assert status_of(tracker, "/health/live") == 200
    samples = scrape(tracker)
    assert value(samples, "journeys_events_out_total", stage="identity-devices", outcome="dead-lettered") == 1
    assert not value(samples, "journeys_agent_crashes_total", agent="identity-devices")
    rows = json.loads(tracker.journeys("dlq", "list", "--format", "json").stdout)
    assert any(r["stage"] == "identity-devices" for r in rows), rows


def test_created_topics_are_visible_when_ensure_topics_returns(kafka_bootstrap: str) -> None:
    """A worker subscribing right after creation must find its topics: else it joins with an empty
    assignment and waits for its next metadata refresh, 5 min (seen in a split-role soak)."""
    from kafka.admin import KafkaAdminClient

    from streams.admin import ensure_topics, wait_visible
    from streams.settings import Settings

    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=f"vis{time.time_ns()}-")
    started = time.monotonic()
    created = ensure_topics(settings)
    assert time.monotonic() - started < 20  # it did not sit out wait_visible's 30 s deadline
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        described = admin.describe_topics(created)
        assert len(created) == len(described) > 10
        assert all(d["error_code"] == 0 and d["partitions"] for d in described), described
        # the real broker's answer has the shape wait_visible reads (leaders included)
        assert wait_visible(admin, created, timeout=5)
        assert not wait_visible(admin, [f"{settings.topic_prefix}never-created"], timeout=0.5)
    finally:
        admin.delete_topics(created)
        admin.close()
