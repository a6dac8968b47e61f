"""Scenarios 1, 2 and 4 — faults of the stream worker and of the store process — on the
production split: one ``JOURNEYS_ROLES=stream`` worker, one ``JOURNEYS_ROLES=store`` process.

They run as phases on the same processes and store (each with its own ids and accounts, and a
feeder producing its journeys while the faults happen), then the pipeline drains, the store is
read once, and each test checks its own part:

1. kill -9 of the stream worker at random points (``FAULTS_TRIALS`` times);
2. kill -9 of the store right after its n-th successful ClickHouse insert, before the offsets
   are committed (``JOURNEYS_FAULT_KILL_AFTER_INSERTS``; ``FAULTS_TRIALS`` times, random n);
4. ClickHouse unavailable for ``FAULTS_OUTAGE_SECONDS`` (``JOURNEYS_FAULT_FAIL_INSERTS_SECONDS``).
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from tests.faults import harness as h
from tests.faults.conftest import Phases, Topology, progress, stored

pytestmark = [pytest.mark.faults, pytest.mark.integration]

PHASE_TIMEOUT = 300 + 60 * h.TRIALS + 2 * h.OUTAGE_SECONDS


def kill_stream_worker(run: Phases, topo: Topology, store: h.Proc, worker: h.Proc, rng: random.Random) -> None:
    recs = run.journeys("1", 1, 5 + 5 * h.TRIALS)
    feeder = h.Feeder(topo.bootstrap, worker.topic(h.INBOUND), recs, rate=len(recs) / (13 * h.TRIALS))
    feeder.start()
    flowing = 0
    for _ in range(h.TRIALS):
        flowing += progress(store, feeder)
        time.sleep(rng.uniform(0, 2))  # a random point while events flow through every stage
        worker.kill9()
        worker.start()
    feeder.finish()
    run.notes["1"] = f"{flowing} of {h.TRIALS} kills while events flowed"


def kill_store_after_insert(run: Phases, topo: Topology, store: h.Proc, worker: h.Proc, rng: random.Random) -> None:
    recs = run.journeys("2", 2, 5 + 5 * h.TRIALS)
    feeder = h.Feeder(topo.bootstrap, worker.topic(h.INBOUND), recs, rate=len(recs) / (12 * h.TRIALS))
    kills = []
    store.env["JOURNEYS_FAULT_KILL_AFTER_INSERTS"] = str(rng.randint(2, 10))
    store.stop()
    store.start()
    feeder.start()
    for trial in range(h.TRIALS):
        h.wait_for(lambda: not store.alive(), 120, "the store to kill itself after n inserts")
        code = store.proc.returncode
        if code != -signal.SIGKILL:
            run.problems["2"].append(f"store exited with {code}, not by SIGKILL")
        kills.append(store.env["JOURNEYS_FAULT_KILL_AFTER_INSERTS"])
        if trial < h.TRIALS - 1:  # after the last kill, phase 4 restarts it (with its own fault)
            store.env["JOURNEYS_FAULT_KILL_AFTER_INSERTS"] = str(rng.randint(2, 10))
            store.start()
    feeder.finish()
    if store.log_text().count("fault injection: SIGKILL after insert") < h.TRIALS:
        run.problems["2"].append("the store did not log every injected kill")
    run.notes["2"] = f"killed after inserts #{', #'.join(kills)}"


def clickhouse_outage(run: Phases, topo: Topology, store: h.Proc, worker: h.Proc) -> None:
    outage = h.OUTAGE_SECONDS
    recs = run.journeys("4", 4, 12)
    assert not store.alive()
    store.env["JOURNEYS_FAULT_KILL_AFTER_INSERTS"] = "0"
    store.env["JOURNEYS_FAULT_FAIL_INSERTS_SECONDS"] = str(outage)
    marks = store.log_text().count("fault injection: ClickHouse unavailable")
    store.start()
    topic = worker.topic(h.INBOUND)
    first, rest = recs[:1], recs[1:]
    h.produce(topo.bootstrap, topic, first)  # the first insert after the restart starts the outage
    h.wait_for(lambda: store.log_text().count("fault injection: ClickHouse unavailable") > marks, 90,
               "the first insert")
    began = time.monotonic()
    h.produce(topo.bootstrap, topic, rest)
    samples = []  # (seconds into the outage, stored events, consumer lag on the timeline topic)
    lag_topic = store.topic("journeys-timeline-v1")
    while time.monotonic() - began < outage - 1.5:
        samples.append((round(time.monotonic() - began, 1), stored(store),
                        store.metric("journeys_consumer_lag", topic=lag_topic)))
        time.sleep(1)
    retries = store.metric("journeys_sink_insert_retries_total")
    h.wait_for(lambda: stored(store) > samples[-1][1], 60 + outage, "the first insert after the outage")
    recovered = time.monotonic() - began
    during = [s for s in samples if s[0] >= 1.0]
    levels = sorted({s[1] for s in during})
    lags = [s[2] for s in during]
    run.notes["4"] = (f"stored flat at {levels[0] if len(levels) == 1 else levels} for "
                      f"{during[-1][0] - during[0][0]:.0f}s while {len(rest)} more were produced; timeline "
                      f"lag {lags[0]:.0f} → {max(lags):.0f}; {retries:.0f} retried inserts; writing again "
                      f"{recovered:.0f}s after the outage began")
    if len(levels) != 1:
        run.problems["4"].append(f"stored count moved during the outage: {during}")
    if max(lags) <= lags[0] and max(lags) <= 0:
        run.problems["4"].append(f"consumer lag did not grow during the outage: {during}")
    if retries < 1:
        run.problems["4"].append("no insert was retried")


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Phases:
    tmp: Path = tmp_path_factory.mktemp("kills")
    topo = Topology(kafka_bootstrap, tmp, f"fk{int(time.time()) % 100000}-")
    r = Phases(topo.prefix, ('1', '2', '4'))
    rng = random.Random(12)
    try:
        store = topo.add("store")
        worker = topo.add("stream")
        store.start(wait=False)
        worker.start()
        store.wait_until(lambda: store.stats() is not None, 120, "the store API")
        kill_stream_worker(r, topo, store, worker, rng)
        kill_store_after_insert(r, topo, store, worker, rng)
        clickhouse_outage(r, topo, store, worker)
        topo.drain(r.distinct_events(), timeout=PHASE_TIMEOUT)
        r.found = topo.finish()
    finally:
        topo.close()
    return r


@pytest.mark.timeout(PHASE_TIMEOUT)
def test_1_kill9_stream_worker_at_random_points(run: Phases) -> None:
    run.check("1", "1. kill -9 stream worker", h.TRIALS).conclude()


def test_2_kill9_store_after_insert_before_commit(run: Phases) -> None:
    run.check("2", "2. kill -9 store after insert, before commit", h.TRIALS).conclude()


def test_4_clickhouse_unavailable_pauses_consumption_and_loses_nothing(run: Phases) -> None:
    run.check("4", f"4. ClickHouse down {h.OUTAGE_SECONDS:g}s", 1).conclude()
