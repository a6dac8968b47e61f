"""Scenario 3: the Kafka broker killed (-9) and restarted while events flow.

The shared broker (9092) is never touched: this test starts its own on free ports with its own
data directory (``dev/kafka/kafka.sh`` keeps its pid file in ``KAFKA_DATA_DIR``), and stops only
that one.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.faults import harness as h
from tests.faults.conftest import Topology
from tests.support.tracker import ROOT, free_port

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(600 + 60 * h.TRIALS)]

RESTARTS = max(1, h.TRIALS // 5)
"""Broker restarts: 1 in `make test`, 4 in `make faults`."""


class OwnBroker:
    def __init__(self, tmp: Path):
        self.bootstrap = f"127.0.0.1:{free_port()}"
        self.env = dict(os.environ, JOURNEYS_KAFKA_BOOTSTRAP=self.bootstrap, KAFKA_CONTROLLER_PORT=str(free_port()),
                        KAFKA_DATA_DIR=str(tmp / "kafka"), PYTHON=sys.executable, KAFKA_HEAP_OPTS="-Xmx384m -Xms128m")

    def run(self, command: str) -> float:
        started = time.monotonic()
        out = subprocess.run([str(ROOT / "dev/kafka/kafka.sh"), command], env=self.env, capture_output=True,
                             text=True, timeout=240)
        assert out.returncode == 0, f"kafka.sh {command} failed:\n{out.stderr[-2000:]}"
        return time.monotonic() - started


def test_3_broker_hard_restart_mid_stream(tmp_path: Path) -> None:
    broker = OwnBroker(tmp_path)
    broker.run("start")
    topo = Topology(broker.bootstrap, tmp_path, f"fbr{int(time.time()) % 100000}-")
    try:
        store = topo.add("stream,store").start()
        rng = random.Random(303)
        recs = h.journey_events(topo.prefix, 10 * RESTARTS * h.SCALE, datetime.now(timezone.utc) - timedelta(days=8),
                                rng)
        feeder = h.Feeder(topo.bootstrap, store.topic(h.INBOUND), recs, len(recs) / (15 * RESTARTS))
        feeder.start()
        downtimes = []
        for _ in range(RESTARTS):
            before = (store.stats() or {}).get("events", 0)
            h.wait_for(lambda: (store.stats() or {}).get("events", 0) > before, 90, "progress")
            time.sleep(rng.uniform(0, 3))
            downtimes.append(broker.run("restart-hard"))
        feeder.finish(timeout=400)
        topo.drain(len({r.event_id for r in recs}), timeout=300)
        live = store.live_status()
        found = topo.finish()
        result = h.Result("3. broker kill -9 + restart mid-stream", trials=RESTARTS)
        result.notes = f"broker down {', '.join(f'{d:.0f}s' for d in downtimes)}"
        if live[0] != 200:
            result.problems.append(f"worker not live after the restarts: {live}")
        h.verify(result, found, recs).conclude()
    finally:
        topo.close()
        broker.run("stop")
