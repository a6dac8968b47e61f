"""Shared fixtures: the real Kafka broker (started once per session if none is reachable)
and real tracker processes (``python -m streams worker``) on isolated topics and stores."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.tracker import Tracker, broker_reachable

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = os.environ.get("JOURNEYS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """A real broker: the one at JOURNEYS_KAFKA_BOOTSTRAP, or one we start (and stop) here."""
    started = False
    if not broker_reachable(BOOTSTRAP):
        env = dict(os.environ, JOURNEYS_KAFKA_BOOTSTRAP=BOOTSTRAP)
        subprocess.run([str(ROOT / "dev/kafka/kafka.sh"), "start"], check=True, env=env, timeout=600)
        started = True
    assert broker_reachable(BOOTSTRAP), f"no Kafka broker at {BOOTSTRAP}"
    yield BOOTSTRAP
    if started:
        subprocess.run([str(ROOT / "dev/kafka/kafka.sh"), "stop"], check=False, timeout=120)


@pytest.fixture
def tracker_factory(kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest):
    """Make tracker processes sharing one isolated set of topics and one store for this test."""
    made: list[Tracker] = []
    prefix = f"t{os.getpid()}-{request.node.name[:40]}-".replace("[", "-").replace("]", "")

    def make(**env: str) -> Tracker:
        tracker = Tracker(kafka_bootstrap, tmp_path, prefix, extra_env=env, index=len(made))
        made.append(tracker)
        return tracker

    yield make
    for tracker in made:
        tracker.stop()
