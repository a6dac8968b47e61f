"""The pure parts of ``streams.processes``: how many processes a worker runs, and one metrics
exposition from two (the real processes: tests/integration/test_worker_processes.py)."""

from __future__ import annotations

import random
import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams import processes

STORE = b"""# HELP journeys_events_in_total Events consumed by a stage.
# TYPE journeys_events_in_total counter
journeys_events_in_total{stage="store"} 7.0
# HELP journeys_sink_batch_rows Rows per ClickHouse insert block.
# TYPE journeys_sink_batch_rows histogram
journeys_sink_batch_rows_bucket{le="10.0",table="timeline"} 2.0
journeys_sink_batch_rows_bucket{le="+Inf",table="timeline"} 3.0
journeys_sink_batch_rows_count{table="timeline"} 3.0
journeys_sink_batch_rows_sum{table="timeline"} 40.0
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1000.0
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 100.0
"""
STREAM = b"""# HELP journeys_events_in_total Events consumed by a stage.
# TYPE journeys_events_in_total counter
journeys_events_in_total{stage="ingest"} 5.0
journeys_events_in_total{stage="store"} 1.0
# HELP journeys_stream_batch_records Records per batch a stream stage handled.
# TYPE journeys_stream_batch_records histogram
journeys_stream_batch_records_bucket{le="+Inf",stage="ingest"} 2.0
journeys_stream_batch_records_count{stage="ingest"} 2.0
journeys_stream_batch_records_sum{stage="ingest"} 5.0
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 500.0
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 101.0
"""


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text.decode()) for s in f.samples}


def test_merge_sums_shared_series_keeps_the_rest_and_states_each_family_once() -> None:
    merged = processes.merge(STORE, STREAM)
    got = _samples(merged)
    assert got[("journeys_events_in_total", (("stage", "store"),))] == 8.0
    assert got[("journeys_events_in_total", (("stage", "ingest"),))] == 5.0
    assert got[("journeys_sink_batch_rows_count", (("table", "timeline"),))] == 3.0
    assert got[("journeys_stream_batch_records_sum", (("stage", "ingest"),))] == 5.0
    assert got[("process_resident_memory_bytes", ())] == 1500.0  # the worker's memory: both processes
    assert got[("process_start_time_seconds", ())] == 100.0  # a sum would mean nothing: the parent's
    text = merged.decode()
    assert text.count("# TYPE journeys_events_in_total counter") == 1
    assert text.count("# HELP process_resident_memory_bytes") == 1


def test_merge_of_one_side_is_that_side() -> None:
    assert _samples(processes.merge(STORE, b"")) == _samples(STORE)


@pytest.mark.parametrize(("roles", "setting", "cpus", "expected"), [
    ("stream,store", 0, 2, 2),
    ("stream,store", 0, 1, 1),
    ("store, stream", 0, 8, 2),
    ("stream,store", 1, 8, 1),
    ("stream,store", 2, 1, 2),
    ("stream", 2, 8, 1),
    ("store", 0, 8, 1),
])
def test_count(monkeypatch: pytest.MonkeyPatch, roles: str, setting: int, cpus: int, expected: int) -> None:
    monkeypatch.setattr(processes, "_cpus", lambda: cpus)
    monkeypatch.setattr(processes.sys, "platform", "linux")
    assert processes.count_for(roles, setting) == expected


def test_auto_is_one_process_where_a_child_cannot_die_with_its_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "_cpus", lambda: 8)
    monkeypatch.setattr(processes.sys, "platform", "darwin")
    assert processes.count_for("stream,store", 0) == 1
    assert processes.count_for("stream,store", 2) == 2


def test_plan_gives_the_child_one_role_and_its_own_loopback_port() -> None:
    child = processes.plan(["journeys", "worker", "--loglevel", "warn"],
                           {"JOURNEYS_ROLES": "stream,store", "JOURNEYS_WEB_HOST": "0.0.0.0", "X": "1"})
    assert child.argv[1:] == ["-m", "streams", "worker", "--loglevel", "warn"]
    assert child.env["JOURNEYS_ROLES"] == "stream" and child.env["JOURNEYS_WORKER_PROCESSES"] == "1"
    assert child.env["JOURNEYS_WEB_HOST"] == "127.0.0.1" and child.env["X"] == "1"
    assert child.base == f"http://127.0.0.1:{child.port}"


def test_the_stream_roles_reads_are_declared(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """``topics.STREAM_READS`` (what the offset adoption trusts, ``streams.admin``) is what the
    stream role's agents read; the store role reads the rest of what it reads alone."""
    from streams import topics as t
    from streams.app import create_app
    from streams.settings import Settings

    monkeypatch.setenv("JOURNEYS_DATA_DIR", str(tmp_path))
    reads = {}
    for roles in ("stream", "store"):
        app = create_app(Settings(roles=roles))
        reads[roles] = {name for agent in app.agents.values() for name in agent.channel.topics}
    assert reads["stream"] == {t.name(spec) for spec in t.STREAM_READS}
    assert reads["store"] - reads["stream"], "the store role reads no topic of its own"


def test_the_child_never_gets_the_parents_web_address_from_the_command_line() -> None:
    args = ["worker", "--loglevel", "info", "-p", "8080", "--web-bind=0.0.0.0", "-h", "tracker.example",
            "--web-port", "9", "-p7000", "--with-web", "-f", "/tmp/w.log"]
    assert processes.child_args(args) == ["worker", "--loglevel", "info", "--with-web", "-f", "/tmp/w.log"]


def test_the_offsets_adoption_waits_out_a_fresh_brokers_missing_coordinator() -> None:
    """A fresh broker has no group coordinator for a few seconds: the adoption asks again
    (found by the fault suite: each scenario starts its own broker) and gives up on the rest."""
    from kafka.errors import CoordinatorNotAvailableError, GroupAuthorizationFailedError

    from streams import admin

    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise CoordinatorNotAvailableError("not yet")
        return "offsets"

    assert admin._retrying(flaky, seconds=10) == "offsets" and len(calls) == 3

    def refused() -> str:
        calls.append(1)
        raise GroupAuthorizationFailedError("no")

    calls.clear()
    with pytest.raises(GroupAuthorizationFailedError):
        admin._retrying(refused, seconds=10)
    assert len(calls) == 1


def test_a_port_for_the_stream_process_is_outside_the_ephemeral_range(tmp_path, monkeypatch) -> None:
    """The kernel takes outgoing connections' source ports from its ephemeral range: a listening
    port from there (``bind(0)``) could be taken by one of the parent's connections before the
    stream process binds it (CI once saw the child fail with "address already in use")."""
    low, high = processes._ephemeral()
    ports = {processes.free_port() for _ in range(20)}
    assert all(not low <= p <= high for p in ports), ports
    for port in ports:  # nothing listens there
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    # a machine whose ephemeral range covers every port tried: still a port, from bind(0)
    everything = tmp_path / "range"
    everything.write_text("1024\t65535\n")
    monkeypatch.setattr(processes, "EPHEMERAL_RANGE", everything)
    assert processes._ephemeral() == (1024, 65535)
    assert 1024 <= processes.free_port() <= 65535


def test_a_taken_port_is_never_handed_out() -> None:
    rng = random.Random(7)
    first = processes.free_port(rng=random.Random(7))
    with socket.socket() as held:
        held.bind(("127.0.0.1", first))
        held.listen()
        assert processes.free_port(rng=rng) != first  # the same sequence: the taken one is skipped
