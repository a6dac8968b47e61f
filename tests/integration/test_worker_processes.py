"""One ``journeys worker`` on two cores (issue #17, item 2; ``streams.processes``), on the real
broker and store: the stream role runs in a child process, and the two behave as one worker —
one port, one set of metrics and health, one lifetime."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from typing import Any

import orjson

from streams.processes import alive, wait_gone


def _get(tracker: Any, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{tracker.port}{path}", timeout=15) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _event(n: int) -> bytes:
    return orjson.dumps({"type": "track", "event": "Page Viewed", "messageId": f"wp-{n}", "anonymousId": f"anon-{n % 3}",
                         "timestamp": "2026-11-30T10:00:00Z", "properties": {"url": f"https://example.com/{n}"}})


def _environ(pid: int) -> dict[str, str]:
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def test_the_worker_runs_its_stream_role_in_a_second_process_and_serves_both(tracker_factory: Any) -> None:
    tracker = tracker_factory(JOURNEYS_WORKER_PROCESSES="2").start()
    pids = tracker.pids()
    assert len(pids) == 2, pids
    child = _environ(pids[1])
    assert child["JOURNEYS_ROLES"] == "stream" and child["JOURNEYS_WEB_HOST"] == "127.0.0.1"
    assert child["JOURNEYS_WEB_PORT"] != str(tracker.port)

    tracker.produce([_event(n) for n in range(6)])
    tracker.wait_for_stored(6, timeout=90)
    tracker.wait_until(lambda: _get(tracker, "/health/ready")[0] == 200, 60, "ready")
    ready = json.loads(_get(tracker, "/health/ready")[1])
    assert ready["roles"] == "stream,store" and ready["assigned_partitions"] > 0

    status, body = _get(tracker, "/metrics")
    assert status == 200
    lines = body.decode().splitlines()
    # the stream stages count in the child, the store in the parent: one scrape shows both
    for stage in ("ingest", "dedupe", "identity-devices", "journey", "store"):
        assert any(line.startswith(f'journeys_events_in_total{{stage="{stage}"') for line in lines), stage
    assert sum(1 for line in lines if line.startswith("# TYPE journeys_events_in_total ")) == 1
    assert _get(tracker, "/health/live") == (200, b'{"live":true}')
    # Faust's views of table state answer from the child, where the tables are
    status, body = _get(tracker, "/table/identity-devices/anon-1/")
    assert status == 200 and json.loads(body), body
    tracker.stop()
    assert wait_gone(pids[1], 10), "the stream process outlived a graceful stop"


def test_kill_9_of_the_worker_ends_its_stream_process_and_a_restart_loses_nothing(tracker_factory: Any) -> None:
    tracker = tracker_factory(JOURNEYS_WORKER_PROCESSES="2").start()
    tracker.produce([_event(n) for n in range(5)])
    tracker.wait_for_stored(5, timeout=90)
    parent, child = tracker.pids()
    tracker.kill9()
    assert wait_gone(child, 10), "the stream process outlived its parent's kill -9"

    tracker.produce([_event(n) for n in range(5, 12)])
    tracker.start()
    assert len(tracker.pids()) == 2
    assert tracker.wait_for_stored(12, timeout=120)["events"] == 12


def test_a_stream_process_that_dies_stops_the_worker_with_its_code(tracker_factory: Any) -> None:
    tracker = tracker_factory(JOURNEYS_WORKER_PROCESSES="2").start()
    tracker.wait_until(lambda: len(tracker.pids()) == 2, 30, "the stream process")
    parent, child = tracker.pids()
    os.kill(child, signal.SIGKILL)
    assert tracker.proc is not None
    assert tracker.proc.wait(timeout=30) == 128 + signal.SIGKILL  # a supervisor restarts the whole worker
    assert "the stream process (pid" in tracker.log_path.read_text(errors="replace")
    tracker.proc = None


def test_one_process_when_asked_or_when_given_one_role(tracker_factory: Any) -> None:
    one = tracker_factory(JOURNEYS_WORKER_PROCESSES="1").start()
    assert len(one.pids()) == 1
    one.produce([_event(1)])
    one.wait_for_stored(1, timeout=90)
    one.stop()
    store_only = tracker_factory(JOURNEYS_ROLES="store", JOURNEYS_WORKER_PROCESSES="2").start()
    assert len(store_only.pids()) == 1
    assert alive(store_only.pids()[0])


def _store_records_in(tracker: Any) -> float:
    _, body = _get(tracker, "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
               if line.startswith('journeys_events_in_total{stage="store"'))


def test_a_worker_that_ran_in_one_process_keeps_its_store_offsets_when_it_runs_two(tracker_factory: Any) -> None:
    """The store role commits as `<app>-store` in two processes: it starts where the one-process
    worker's group left off instead of reading every store topic again (streams.admin)."""
    one = tracker_factory(JOURNEYS_WORKER_PROCESSES="1").start()
    identify = orjson.dumps({"type": "identify", "messageId": "wp-id", "anonymousId": "anon-1", "userId": "u-1",
                             "timestamp": "2026-11-30T10:05:00Z", "traits": {"email": "ann@example.com"}})
    one.produce([_event(n) for n in range(9)] + [identify])  # the identify links a device: a store-only topic
    one.wait_for_stored(10, timeout=90)
    one.wait_until(lambda: _store_records_in(one) >= 10, 30, "the store's records counted")
    one.stop()  # a graceful stop commits what was acked

    two = tracker_factory(JOURNEYS_WORKER_PROCESSES="2").start()
    two.wait_until(lambda: "starts from" in two.log_path.read_text(errors="replace"), 30, "the adoption said")
    two.produce([_event(10)])
    two.wait_for_stored(11, timeout=90)
    two.wait_until(lambda: _store_records_in(two) >= 1, 30, "the new event's records in the store")
    # the new event's few records (timeline, identity link, journey update), not the first ten's again
    assert _store_records_in(two) < 10, _store_records_in(two)
