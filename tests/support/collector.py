"""Run the real collector (``python -m streams collector``) next to a test's tracker."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.support.tracker import ROOT, Tracker, free_port


class Collector:
    """A collector process sharing ``tracker``'s environment (broker, topic prefix)."""

    def __init__(self, tracker: Tracker, write_keys: dict[str, object]):
        """``write_keys``: as JOURNEYS_COLLECTOR__WRITE_KEYS (key → source, or → {"source", "allow", …})."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tracker.log_path.with_name(f"collector-{self.port}.log")
        self.env = dict(tracker.env, JOURNEYS_COLLECTOR__PORT=str(self.port),
                        JOURNEYS_COLLECTOR__WRITE_KEYS=json.dumps(write_keys))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "Collector":
        self.proc = subprocess.Popen([sys.executable, "-m", "streams", "collector"], cwd=ROOT, env=self.env,
                                     stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"collector exited ({self.proc.returncode}):\n{self.log()}")
            if self.healthy():
                return self
            time.sleep(0.3)
        raise AssertionError(f"collector not healthy after {timeout}s:\n{self.log()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else "(no log)"
