"""Alerts on the real broker: a channel bounce, an SLA breach fired by the timer with no further
events, a kill -9 in the middle of both, and a webhook that fails then recovers — each alert
stored once and delivered to the webhook exactly once."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
import yaml

from schemas.definitions import DEFAULT_PATH
from tests.support.tracker import free_port

pytestmark = pytest.mark.integration


class FlakyReceiver:
    """A local webhook receiver that answers 500 to its first ``failures`` requests."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[str] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.attempts += 1
                if receiver.attempts <= receiver.failures:
                    self.send_response(500)
                    self.end_headers()
                    return
                assert "text" in json.loads(body)  # Slack-compatible body
                receiver.received.append(self.headers["X-Journeys-Alert-Id"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def test_bounce_and_sla_alerts_survive_a_restart_and_reach_a_flaky_webhook_once(tracker_factory, tmp_path) -> None:
    defs = yaml.safe_load(DEFAULT_PATH.read_text())
    defs["sla"]["mql_first_touch_hours"] = 20 / 3600  # 20 seconds
    path = tmp_path / "defs.yaml"
    path.write_text(yaml.safe_dump(defs))
    hook = FlakyReceiver(failures=3)
    tracker = tracker_factory(
        JOURNEYS_DEFINITIONS=str(path), JOURNEYS_ALERT_WEBHOOKS=json.dumps([hook.url]),
        JOURNEYS_ALERT_TICK_SECONDS="1", JOURNEYS_ALERT_IDLE_SECONDS="2",
    ).start()
    now = datetime.now(timezone.utc)

    def touch(i: int, human: bool, minutes: float) -> dict:
        when = iso(now - timedelta(minutes=minutes))
        if human:
            return {"type": "conversation", "conversationId": f"bounce-call-{i}", "channel": "call", "repId": "ae-1",
                    "repRole": "AE", "direction": "outbound", "startedAt": when, "crmAccountId": "bouncer",
                    "contactEmails": ["pat@bouncer.io"]}
        return {"type": "page", "messageId": f"bounce-page-{i}", "userId": "pat", "groupId": "bouncer",
                "timestamp": when, "name": "Docs", "context": {"page": {"path": "/docs"}}}

    group = {"type": "group", "messageId": "bounce-group", "userId": "pat", "groupId": "bouncer",
             "timestamp": iso(now - timedelta(minutes=60))}
    first_half = [group, touch(0, False, 50), touch(1, True, 40)]
    second_half = [touch(2, False, 30), touch(3, True, 20)]  # the third switch is the bounce
    mql = {"type": "lead_status", "leadId": "lead-sla", "status": "mql", "changedAt": iso(now),
           "crmAccountId": "slow-co", "email": "kim@slow.co", "leadSource": "webinar"}

    tracker.produce([orjson.dumps(e) for e in first_half + [mql]])
    tracker.wait_for_stored(events=4)
    tracker.kill9()  # in the middle of both: the bounce is incomplete, the SLA is still running
    tracker.produce([orjson.dumps(e) for e in second_half])
    tracker.start()

    def alerts() -> list[dict]:
        out = tracker.journeys("alerts", "--format", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []

    tracker.wait_until(lambda: {a["rule"] for a in alerts()} >= {"channel_bounce", "missed_handoff"}, 120,
                       "the bounce and the missed-handoff alerts")
    tracker.wait_until(lambda: len(hook.received) >= len(alerts()), 90, "webhook deliveries")
    time.sleep(4)  # a few more timer ticks: nothing may fire again
    fired = alerts()
    rules = Counter(a["rule"] for a in fired)
    assert rules["channel_bounce"] == 1 and rules["missed_handoff"] == 1
    bounce = next(a for a in fired if a["rule"] == "channel_bounce")
    assert bounce["account_id"] == "bouncer" and bounce["owner"] == "ae-1"
    assert bounce["link"].endswith("/ui/account/bouncer") and len(json.loads(bounce["path"])) >= 4
    assert hook.attempts > hook.failures  # it failed, then recovered
    assert sorted(hook.received) == sorted(a["alert_id"] for a in fired)  # each exactly once
