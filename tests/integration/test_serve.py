"""``journeys serve``: the API and the UI without a worker, read-only, on the embedded store.

A real tracker (with a token) stores the bundled demo sample, answers a few reads, and stops;
then ``python -m streams serve`` runs as a subprocess on that store and must answer the same
reads the same way, with the same token rule, and refuse — one line, non-zero — to open a store
another process holds (a second ``serve``, a worker).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streams.cli.demo import expected_outcome, sample_lines
from streams.settings import Settings
from tests.support.tracker import ROOT, Tracker, free_port

pytestmark = pytest.mark.integration

TOKEN = "serve-test-token-0123456789"
ACCOUNT = "acme-corp"
READS = ("/api/v1/stats", f"/api/v1/timeline/{ACCOUNT}", "/api/v1/accounts", "/api/v1/reports/funnel",
         f"/api/v1/reports/stages?account={ACCOUNT}", "/api/v1/dead-letters", "/api/v1/schema",
         "/api/v1/privacy/requests")


def call(port: int, path: str, token: str | None = TOKEN, method: str = "GET") -> tuple[int, Any, str]:
    """Status, body (JSON decoded when it is JSON) and content type (0: nothing answers)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, raw, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    except OSError as exc:
        return 0, str(exc), ""
    return status, json.loads(raw) if "json" in ctype and raw else raw.decode(errors="replace"), ctype


class Serve:
    """One ``python -m streams serve`` process."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.port = free_port()
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "streams", "serve", "--port", str(self.port), *args],
                                     env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 60) -> "Serve":
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited ({self.proc.returncode}):\n{self.log.read_text()}"
            if call(self.port, "/health/live")[0] == 200:
                return self
            time.sleep(0.3)
        raise AssertionError(f"serve did not answer:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def stored(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):
    """A stopped tracker whose embedded store holds the demo sample, and what it answered to READS."""
    tmp = tmp_path_factory.mktemp("serve")
    tracker = Tracker(kafka_bootstrap, tmp, f"t{os.getpid()}-serve-", index=0, extra_env={"JOURNEYS_API_TOKEN": TOKEN})
    tracker.start(wait=False)
    try:
        tracker.wait_until(lambda: call(tracker.port, "/api/v1/stats")[0] == 200, 120, "the worker API")
        lines = sample_lines()
        valid, invalid = expected_outcome(lines, Settings())
        tracker.produce(lines)

        def done() -> bool:
            stats = call(tracker.port, "/api/v1/stats")[1]
            if not isinstance(stats, dict) or stats.get("events", 0) < len(valid) \
                    or stats.get("dead_letters", 0) < invalid or stats.get("resolved", 0) < stats["events"]:
                return False
            stages = call(tracker.port, f"/api/v1/reports/stages?account={ACCOUNT}")[1]
            return isinstance(stages, dict) and "won" in {r["to_stage"] for r in stages["rows"]}

        tracker.wait_until(done, 120, "the sample and Acme Corp's stage changes stored")
        answers = {path: call(tracker.port, path) for path in READS}
        for _ in range(60):  # until settled: the store may still re-resolve what the last links moved
            time.sleep(1.0)
            again = {path: call(tracker.port, path) for path in READS}
            if again == answers:
                break
            answers = again
    finally:
        tracker.stop()
    yield tracker, answers, tmp


@pytest.fixture(scope="module")
def served(stored):
    tracker, _, tmp = stored
    serve = Serve(tracker.env, tmp / "serve.log").wait()
    yield serve
    serve.stop()


def test_serve_answers_the_reads_the_worker_answered(stored, served: Serve) -> None:
    _, answers, _ = stored
    for path, (status, body, ctype) in answers.items():
        assert status == 200, (path, body)
        got = call(served.port, path)
        assert got == (status, body, ctype), path
    stats = answers["/api/v1/stats"][1]
    assert stats["events"] > 0 and stats["dead_letters"] > 0
    assert answers[f"/api/v1/timeline/{ACCOUNT}"][1]["events"]
    assert answers["/api/v1/reports/funnel"][1]["rows"]
    status, body, _ = call(served.port, "/api/v1/reports/no-such-report")
    assert status == 400 and "error" in body
    status, body, _ = call(served.port, f"/api/v1/timeline/{ACCOUNT}?limit=0")
    assert status == 400 and "limit" in body["error"]


def test_serve_serves_the_ui_pages_and_static_files(served: Serve) -> None:
    for path, page in (("/ui/", "search"), (f"/ui/account/{ACCOUNT}", "account"), ("/ui/funnel", "funnel")):
        status, body, ctype = call(served.port, path, token=None)
        assert status == 200 and ctype.startswith("text/html"), path
        assert f'data-page="{page}"' in body and f"/ui/static/{page}.js" in body
    status, body, ctype = call(served.port, "/ui/static/funnel.js", token=None)
    assert status == 200 and ctype.startswith("text/javascript") and "funnel" in body
    assert call(served.port, "/ui/static/nope.js", token=None)[0] == 404
    status, body, _ = call(served.port, "/api/v1/openapi.json")
    assert status == 200 and "/api/v1/stats" in body["paths"]


def test_serve_keeps_the_token_rule_and_is_read_only(stored, served: Serve) -> None:
    assert call(served.port, "/api/v1/stats", token=None)[:2] == (401, {"error": "missing or wrong token"})
    assert call(served.port, "/api/v1/stats", token="wrong-token-0123456789")[0] == 401
    assert call(served.port, "/health/live", token=None)[:2] == (200, {"live": True})
    assert call(served.port, "/health/ready", token=None)[1]["ready"] is True
    assert call(served.port, "/api/v1/stats", method="POST")[0] == 405
    assert call(served.port, "/ui/", method="DELETE")[0] == 405
    tracker, _, _ = stored
    env = {k: v for k, v in tracker.env.items() if k != "JOURNEYS_API_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "streams", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78, proc.stderr
    assert "JOURNEYS_API_TOKEN" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_serve_exposes_prometheus_metrics_of_its_requests(stored, served: Serve) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    served_tenant = stored[0].tenant  # the tracker's JOURNEYS_TOPIC_PREFIX names the tenant

    def samples() -> dict[tuple[str, tuple], float]:
        status, body, ctype = call(served.port, "/metrics", token=None)  # no token, as on a worker
        assert status == 200 and ctype.startswith("text/plain"), (status, body)
        found = [s for family in text_string_to_metric_families(body) for s in family.samples]
        tenant = served_tenant  # serve's series carry the tenant of its settings: checked, then left out
        assert found and all(s.labels.get("tenant") == tenant for s in found), found[:5]
        return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "tenant"))): s.value
                for s in found}

    def requests(route: str, status: int) -> float:
        return before.get(("journeys_api_requests_total", (("route", route), ("status", str(status)))), 0.0)

    before = samples()
    timeline, missing = requests("api-timeline", 200), requests("api-report", 400)
    assert call(served.port, f"/api/v1/timeline/{ACCOUNT}")[0] == 200
    assert call(served.port, f"/api/v1/timeline/{ACCOUNT}")[0] == 200
    assert call(served.port, "/api/v1/reports/no-such-report")[0] == 400
    before = samples()
    assert requests("api-timeline", 200) == timeline + 2
    assert requests("api-report", 400) == missing + 1
    assert before[("journeys_api_request_seconds_count", (("route", "api-timeline"),))] >= 2
    assert before[("journeys_api_request_seconds_sum", (("route", "api-timeline"),))] > 0
    assert before[("process_resident_memory_bytes", ())] > 0  # the process's own series
    assert before[("journeys_malloc_bytes", (("allocator", "glibc"), ("kind", "in_use")))] > 0


def refused(env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "streams", "serve", "--port", str(free_port())],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "is held by the tracker answering at" in proc.stderr, proc.stderr
    return proc


def test_a_second_serve_on_the_same_embedded_store_is_refused(stored, served: Serve) -> None:
    tracker, _, _ = stored
    refused(dict(tracker.env, JOURNEYS_API_URL=f"http://127.0.0.1:{served.port}"))
    # not found through the API (JOURNEYS_API_URL elsewhere): chDB's lock refuses, and serve says so
    proc = subprocess.run([sys.executable, "-m", "streams", "serve", "--port", str(free_port())],
                          env=dict(tracker.env, JOURNEYS_API_URL=f"http://127.0.0.1:{free_port()}"),
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "cannot open the embedded store" in proc.stderr.strip().splitlines()[-1], proc.stderr
    assert call(served.port, "/api/v1/stats")[0] == 200  # the first one still serves


def test_serve_is_refused_while_a_worker_holds_the_store(stored, served: Serve) -> None:
    tracker, _, _ = stored
    served.stop()  # the store is free again: a worker takes it
    tracker.start(wait=False)
    try:
        tracker.wait_until(lambda: call(tracker.port, "/api/v1/stats")[0] == 200, 120, "the worker API")
        refused(tracker.env)
    finally:
        tracker.stop()
