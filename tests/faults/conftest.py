"""Fixtures of the fault suite, and the results table printed (and written) at the end."""

from __future__ import annotations

import os
import platform
import random
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.faults import harness as h

ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "faults.md"


class Topology:
    """The processes of one scenario: they share its topics (prefix) and its store."""

    def __init__(self, bootstrap: str, tmp: Path, prefix: str):
        self.bootstrap, self.tmp, self.prefix = bootstrap, tmp, prefix
        self.procs: list[h.Proc] = []
        h.TRACE = lambda ids: h.trace_ids(bootstrap, prefix, ids)  # a failed check names the losing hop

    def add(self, roles: str = "stream,store", **env: str) -> h.Proc:
        proc = h.Proc(self.bootstrap, self.tmp, self.prefix, index=len(self.procs), roles=roles, env=env)
        self.procs.append(proc)
        return proc

    @property
    def store(self) -> h.Proc:
        return next(p for p in self.procs if "store" in p.roles)

    def running(self) -> list[h.Proc]:
        return [p for p in self.procs if p.alive()]

    def drain(self, expect_events: int, expect_dead: int = 0, timeout: float = 240) -> dict:
        return h.wait_drained(self.bootstrap, self.running(), self.prefix, expect_events=expect_events,
                              expect_dead=expect_dead, timeout=timeout, store=self.store)

    def finish(self, event_prefix: str | None = None) -> dict:
        """Stop every process, then read the store directly."""
        h.stop_all(self.procs)
        return h.probe(self.store.store_url, self.prefix if event_prefix is None else event_prefix)

    def close(self) -> None:
        for p in self.procs:
            try:
                p.stop()
            except Exception:  # noqa: BLE001 - cleanup must reach every process
                p.kill9()


class Phases:
    """Scenarios run as phases of one module on one :class:`Topology` (each with its own ids and
    accounts): per scenario key, its topic prefix, events, notes and problems; ``found`` is the
    store, read once after every phase has drained. Each test then checks its own part."""

    def __init__(self, prefix: str, keys: tuple[str, ...]):
        self.prefix = {k: f"{prefix}s{k}-" for k in keys}
        self.recs: dict[str, list[h.Rec]] = {}
        self.notes: dict[str, str] = {}
        self.problems: dict[str, list[str]] = {k: [] for k in keys}
        self.found: dict = {}

    def journeys(self, key: str, seed: int, accounts: int) -> list[h.Rec]:
        """Generate (and keep) scenario ``key``'s events: ``accounts`` × SCALE journeys of the last 8 days."""
        self.recs[key] = h.journey_events(self.prefix[key], accounts * h.SCALE,
                                          datetime.now(timezone.utc) - timedelta(days=8), random.Random(seed))
        return self.recs[key]

    def distinct_events(self) -> int:
        return sum(len({x.event_id for x in recs}) for recs in self.recs.values())

    def check(self, key: str, name: str, trials: int = 1, **verify: object) -> h.Result:
        result = h.Result(name, trials=trials, notes=self.notes.get(key, ""), problems=list(self.problems[key]))
        return h.verify(result, h.only(self.found, self.prefix[key]), self.recs[key], **verify)


def stored(store: h.Proc) -> int:
    """Events visible in ``store`` now (its stats API; 0 while it is not answering)."""
    return (store.stats() or {}).get("events", 0)


def progress(store: h.Proc, feeder: h.Feeder, timeout: float = 90) -> bool:
    """Wait until the store's visible count grows (the pipeline is really processing) or the
    feeder is done; True if events were still flowing."""
    before = stored(store)
    h.wait_for(lambda: stored(store) > before or not feeder.is_alive(), timeout, "progress", every=0.3)
    return feeder.is_alive()


@pytest.fixture
def topology(kafka_bootstrap: str, tmp_path: Path, request: pytest.FixtureRequest):
    """A fresh set of topics (prefix) and store for one scenario on the shared broker."""
    name = request.node.name.replace("test_", "")[:24].replace("_", "-")
    topo = Topology(kafka_bootstrap, tmp_path, f"f{os.getpid()}-{int(time.time()) % 100000}-{name}-")
    yield topo
    topo.close()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001 - pytest hook
    if not h.RESULTS:
        return
    table = h.render_table(h.RESULTS)
    mode = "full (make faults)" if h.FULL else "short (make test)"
    terminalreporter.write_sep("=", f"fault suite — {mode}")
    terminalreporter.write_line(table)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=ARTIFACT.parents[1], timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(
        f"# Fault suite results — {mode}\n\n"
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}, commit {commit} (+ working tree), "
        f"{platform.node()} ({os.cpu_count()} CPUs), FAULTS_TRIALS={h.TRIALS}, outage {h.OUTAGE_SECONDS:g}s\n\n"
        f"{table}\n")
    terminalreporter.write_line(f"(written to {ARTIFACT})")
