"""Drive real tracker processes from tests: start, stop, kill -9, query through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient

from streams import processes

ROOT = Path(__file__).resolve().parents[2]


def broker_reachable(bootstrap: str) -> bool:
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False
    try:
        admin.list_topics()
        return True
    except Exception:  # noqa: BLE001
        return False
    finally:
        admin.close()


def free_port() -> int:
    """A port for a server a test starts: outside the ephemeral range (streams.processes.free_port)."""
    return processes.free_port()


class Tracker:
    """One ``python -m streams worker`` process with its own web port."""

    def __init__(self, bootstrap: str, tmp: Path, prefix: str, *, extra_env: dict[str, str], index: int):
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.port = free_port()
        self.data_dir = tmp / f"worker{index}"
        self.store_dir = tmp / "store"
        self.log_path = tmp / f"worker{index}.log"
        self.env = dict(
            os.environ,
            JOURNEYS_KAFKA_BOOTSTRAP=bootstrap,
            JOURNEYS_TOPIC_PREFIX=prefix,
            JOURNEYS_APP_ID=f"{prefix}app",
            JOURNEYS_DATA_DIR=str(self.data_dir),
            JOURNEYS_CLICKHOUSE_URL=f"chdb://{self.store_dir}",
            JOURNEYS_WEB_PORT=str(self.port),
            JOURNEYS_SQL__PORT=str(free_port()),  # never the default 8124: trackers run side by side
            JOURNEYS_API_URL=f"http://127.0.0.1:{self.port}",
            JOURNEYS_TOPIC_PARTITIONS="2",
            JOURNEYS_SINK_FLUSH_SECONDS="0.3",
            JOURNEYS_COMMIT_INTERVAL="0.5",
            JOURNEYS_SESSION_TIMEOUT_SECONDS="6",
        )
        self.env.update(extra_env)
        self.prefix = self.env["JOURNEYS_TOPIC_PREFIX"]
        self.proc: subprocess.Popen | None = None

    # -- process control -------------------------------------------------------------------
    def start(self, wait: bool = True) -> "Tracker":
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "streams", "worker", "--loglevel", "info"],
                                     stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        if wait:
            self.wait_until(lambda: self.stats() is not None, 120, "the worker API")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def groups(self) -> dict[str, str]:
        """The consumer group each of this worker's roles commits as (``streams.processes.groups_for``)."""
        from streams.processes import groups_for

        return groups_for(self.env["JOURNEYS_APP_ID"], self.env.get("JOURNEYS_ROLES", "stream,store"),
                          int(self.env.get("JOURNEYS_WORKER_PROCESSES") or 0))

    def pids(self) -> list[int]:
        """The worker's processes: the one started, then its children (the stream role's
        process when it runs two, ``streams.processes``)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        from streams.processes import children

        return [self.proc.pid, *children(self.proc.pid)]

    def wait_until(self, predicate, timeout: float, what: str, interval: float = 0.3) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}) waiting for {what}:\n{self.log_tail()}")
            if predicate():
                return
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {what}\n{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"

    # -- data in and out -------------------------------------------------------------------
    @property
    def tenant(self) -> str:
        """The tenant its prefix names (``Settings.tenant``): the ``tenant`` label of its metrics."""
        return self.prefix.rstrip("-_.") or self.prefix

    def topic(self, name: str) -> str:
        return self.prefix + name

    def produce(self, lines: list[bytes], topic: str = "journeys-inbound-v1", key: bytes | None = None) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        for line in lines:
            producer.send(self.topic(topic), key=key, value=line)
        producer.flush()
        producer.close()

    def api(self, path: str) -> Any:
        token = self.env.get("JOURNEYS_API_TOKEN")
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                         headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError):
            return None

    def stats(self) -> dict[str, int] | None:
        return self.api("/api/v1/stats")

    def wait_for_stored(self, events: int, dead_letters: int = 0, timeout: float = 90) -> dict[str, int]:
        def done() -> bool:
            s = self.stats() or {}
            return (s.get("events", 0) >= events and s.get("dead_letters", 0) >= dead_letters
                    and s.get("resolved", 0) >= s.get("events", 0))  # the reports see them too

        self.wait_until(done, timeout, f"{events} events and {dead_letters} dead letters stored (and resolved)")
        return self.stats() or {}

    def journeys(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the real ``journeys`` command line with this tracker's settings."""
        return subprocess.run([sys.executable, "-m", "streams", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=check)
