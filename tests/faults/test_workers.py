"""Scenarios 8, 10 and 9 — stream workers coming and going while events flow — as phases on
one store process and two stream workers (each phase with its own ids and accounts); the
pipeline drains, the store is read once, each test checks its own part:

8. one → two → one stream workers (the original leaves: its partitions and table state move
   to the newcomer, restored from the changelog topics);
10. a worker stalled (SIGSTOP) past the session timeout while the other takes over, then
    resumed (SIGCONT): its late writes are absorbed and no alert is raised twice;
9. a worker's local state (RocksDB directory) deleted: rebuilt from the changelog topics in
   bounded time (measured), and the journeys continue as if nothing happened.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.faults import harness as h
from tests.faults.conftest import Phases, Topology, progress

pytestmark = [pytest.mark.faults, pytest.mark.integration]

REBUILD_BOUND = 60.0
"""Seconds a wiped worker may take to be ready again (state restored from the changelog)."""
PHASE_TIMEOUT = 900 if h.FULL else 300


def rebalance(run: Phases, topo: Topology, store: h.Proc, first: h.Proc, second: h.Proc) -> None:
    recs = run.journeys("8", 8, 14)
    feeder = h.Feeder(topo.bootstrap, first.topic(h.INBOUND), recs, len(recs) / 25)
    feeder.start()
    progress(store, feeder)
    started = time.monotonic()
    second.start()
    h.wait_for(lambda: second.ready() and first.ready(), 90, "two workers sharing the partitions")
    joined = time.monotonic() - started
    progress(store, feeder)
    started = time.monotonic()
    first.stop()  # the original leaves: the newcomer takes every partition and restores its state
    h.wait_for(second.ready, 90, "the remaining worker to own every partition")
    left = time.monotonic() - started
    flowing = feeder.is_alive()
    feeder.finish()
    run.notes["8"] = f"2 workers ready {joined:.0f}s after the start of the 2nd; 1 ready {left:.0f}s after " \
                     f"the 1st left{'' if flowing else ' (feeder had finished)'}"


def stall(run: Phases, topo: Topology, store: h.Proc, stalled: h.Proc, other: h.Proc) -> None:
    stalled.start()
    h.wait_for(lambda: stalled.ready() and other.ready(), 90, "both workers to own partitions")
    recs = run.journeys("10", 10, 14)
    feeder = h.Feeder(topo.bootstrap, stalled.topic(h.INBOUND), recs, len(recs) / 25)
    feeder.start()
    progress(store, feeder)
    stalled.signal(signal.SIGSTOP)
    frozen = h.SESSION_TIMEOUT + 6
    time.sleep(frozen)  # its session expires: the other worker takes its partitions over
    took_over = other.ready()
    stalled.signal(signal.SIGCONT)  # it wakes up mid-batch with records of partitions it lost
    # The fence (streams/fence.py) makes a worker frozen past its session exit (75) before its
    # next record, instead of writing from stale state; a supervisor restarts it. A worker that
    # had no record in hand rejoins the group by itself.
    try:
        code = stalled.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        code = None
    if code is not None and code != 75:
        run.problems["10"].append(f"the stalled worker exited with {code} (the fence exits with 75)")
    if code is not None:
        stalled.start()  # as a supervisor would
    feeder.finish()
    if not took_over:
        run.problems["10"].append("the other worker was not ready alone while the first was stopped")
    fate = "exited 75 on waking (fence), restarted" if code == 75 else "kept running after waking"
    run.notes["10"] = f"stopped {frozen:.0f}s (session timeout {h.SESSION_TIMEOUT:g}s); {fate}"


def _changelog_records(bootstrap: str, prefix: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        topics = [t for t in consumer.topics() if t.startswith(prefix) and t.endswith("-changelog")]
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def wipe(run: Phases, topo: Topology, workers: list[h.Proc], expect_before: int) -> None:
    recs = run.journeys("9", 9, 16)
    by_account: dict[str, list[h.Rec]] = {}
    for r in recs:
        by_account.setdefault(r.account, []).append(r)
    # the first half of every journey, then the rest: the second half needs the first half's
    # state (the user's account in the person table, stage and scores in the journey table)
    part1 = [r for rs in by_account.values() for r in rs[: len(rs) // 2]]
    part2 = [r for rs in by_account.values() for r in rs[len(rs) // 2:]]
    topic = workers[0].topic(h.INBOUND)
    h.produce(topo.bootstrap, topic, part1)
    topo.drain(expect_before + len(part1))
    h.stop_all(workers)
    worker = workers[0]
    records = _changelog_records(topo.bootstrap, topo.prefix)
    shutil.rmtree(worker.data_dir)  # RocksDB gone
    started = time.monotonic()
    worker.start()
    h.wait_for(worker.ready, 120, "table recovery from the changelog", every=0.2)
    rebuilt = time.monotonic() - started
    h.produce(topo.bootstrap, topic, part2)
    run.notes["9"] = f"ready {rebuilt:.1f}s after the start ({records} changelog records restored)"
    if rebuilt > REBUILD_BOUND:
        run.problems["9"].append(f"state rebuild took {rebuilt:.0f}s (bound {REBUILD_BOUND:g}s)")


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Phases:
    tmp: Path = tmp_path_factory.mktemp("workers")
    topo = Topology(kafka_bootstrap, tmp, f"fw{int(time.time()) % 100000}-")
    r = Phases(topo.prefix, ('8', '9', '10'))
    try:
        store = topo.add("store")
        first, second = topo.add("stream"), topo.add("stream")
        store.start(wait=False)
        first.start()
        store.wait_until(lambda: store.stats() is not None, 120, "the store API")
        rebalance(r, topo, store, first, second)
        stall(r, topo, store, first, second)
        done = r.distinct_events()
        wipe(r, topo, [second, first], done)
        topo.drain(done + len(r.recs["9"]), timeout=PHASE_TIMEOUT)
        r.found = topo.finish()
    finally:
        topo.close()
    return r


@pytest.mark.timeout(PHASE_TIMEOUT)
def test_8_rebalance_one_two_one_workers_while_events_flow(run: Phases) -> None:
    run.check("8", "8. rebalance 1 → 2 → 1 stream workers").conclude()


def test_9_local_state_wiped_and_rebuilt_from_the_changelog(run: Phases) -> None:
    run.check("9", "9. local state wiped, rebuilt from changelog").conclude()


def test_10_stalled_worker_past_session_timeout_then_resumed(run: Phases) -> None:
    result = run.check("10", "10. stalled worker (SIGSTOP > session timeout)", extra_only_bug="B6")
    mine = h.only(run.found, run.prefix["10"])["alerts"]
    per_rule = Counter((a["rule"], a["account_id"]) for a in mine)
    ids = {a["alert_id"] for a in mine}
    raw = [a["n"] for a in run.found["alerts_raw"] if a["alert_id"] in ids]
    result.notes += (f"; {len(per_rule)} alerts ({sum(raw)} raw rows), "
                     f"{sum(per_rule.values()) - len(per_rule)} raised twice")
    doubled = {k: n for k, n in per_rule.items() if n > 1}
    if not per_rule:
        result.problems.append("the workload raised no alert: nothing to check")
    if doubled:
        result.problems.append(f"alerts raised twice (same rule and account, other ids): {doubled}")
    result.conclude()
