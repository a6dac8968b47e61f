"""Alerts on the real broker: a channel bounce, an SLA breach fired by the timer with no further
events, a kill -9 in the middle of both, and a webhook that fails then recovers — each alert
stored once and delivered to the webhook exactly once. Then routing and dead receivers: a
healthy webhook gets every alert while a 500-forever and a 410-gone one are given up on and
shown failed by `journeys alerts` and the failure metric."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
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
    """A local webhook receiver that answers ``status`` (500) to its first ``failures`` requests."""

    def __init__(self, failures: int, status: int = 500) -> None:
        self.failures = failures
        self.bodies: list[dict] = []
        self.received: list[str] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.attempts += 1
                if receiver.attempts <= receiver.failures:
                    self.send_response(status)
                    self.end_headers()
                    self.wfile.write(b"channel_is_archived" if status == 410 else b"")
                    return
                assert "text" in json.loads(body)  # Slack-compatible body
                receiver.bodies.append(json.loads(body))
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


FOREVER = 10**9


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


def bounce_events(account: str, now: datetime) -> list[dict]:
    """A group call, then digital / 1:1 / digital / 1:1 touches by rep ``ae-1``: a channel bounce."""
    user = f"pat-{account}"
    events: list[dict] = [{"type": "group", "messageId": f"{account}-group", "userId": user, "groupId": account,
                           "timestamp": iso(now - timedelta(minutes=60))}]
    for i, minutes in enumerate((50, 40, 30, 20)):
        when = iso(now - timedelta(minutes=minutes))
        if i % 2:
            events.append({"type": "conversation", "conversationId": f"{account}-call-{i}", "channel": "call",
                           "repId": "ae-1", "repRole": "AE", "direction": "outbound", "startedAt": when,
                           "crmAccountId": account, "contactEmails": [f"{user}@{account}.io"]})
        else:
            events.append({"type": "page", "messageId": f"{account}-page-{i}", "userId": user, "groupId": account,
                           "timestamp": when, "name": "Docs", "context": {"page": {"path": "/docs"}}})
    return events


def test_dead_webhooks_are_given_up_on_while_the_healthy_one_gets_every_alert_routed_by_rule_and_team(
        tracker_factory, tmp_path) -> None:
    healthy = FlakyReceiver(failures=0)           # JOURNEYS_ALERT_WEBHOOKS: every alert
    broken = FlakyReceiver(failures=FOREVER)      # route by rule (channel_bounce): HTTP 500 forever
    gone = FlakyReceiver(failures=FOREVER, status=410)  # route by team (ae-1's): a removed Slack webhook
    handoffs = FlakyReceiver(failures=0)          # route by rule (missed_handoff)
    defs = yaml.safe_load(DEFAULT_PATH.read_text())
    defs["sla"]["mql_first_touch_hours"] = 20 / 3600  # 20 seconds
    defs["alerts"]["teams"] = {"emea": ["ae-1"], "us": ["ae-9"]}
    defs["alerts"]["routes"] = [
        {"name": "bounces", "rules": ["channel_bounce"], "webhook_urls": [broken.url]},
        {"name": "emea", "teams": ["emea"], "webhook_urls": [gone.url]},
        {"name": "handoffs", "rules": ["missed_handoff"], "webhook_urls": [handoffs.url]},
    ]
    path = tmp_path / "defs.yaml"
    path.write_text(yaml.safe_dump(defs))
    tracker = tracker_factory(
        JOURNEYS_DEFINITIONS=str(path), JOURNEYS_ALERT_WEBHOOKS=json.dumps([healthy.url]),
        JOURNEYS_ALERT_TICK_SECONDS="1", JOURNEYS_ALERT_IDLE_SECONDS="2",
        JOURNEYS_ALERT_DELIVERY_ATTEMPTS="3", JOURNEYS_ALERT_DELIVERY_BACKOFF_SECONDS="0.2",
    ).start()
    now = datetime.now(timezone.utc)
    bouncers = ["bouncer-0", "bouncer-1", "bouncer-<!here>&co"]  # account ids come from events
    mql = {"type": "lead_status", "leadId": "lead-sla", "status": "mql", "changedAt": iso(now),
           "crmAccountId": "slow-co", "email": "kim@slow.co", "leadSource": "webinar"}
    tracker.produce([orjson.dumps(e) for account in bouncers for e in bounce_events(account, now)] + [orjson.dumps(mql)])

    def alerts(*args: str) -> list[dict]:
        out = tracker.journeys("alerts", "--format", "json", *args, check=False)
        return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []

    def settled() -> bool:
        fired = alerts()
        rules = Counter(a["rule"] for a in fired)
        return (rules["channel_bounce"] == len(bouncers) and rules["missed_handoff"] == 1
                and all(a["delivery"] for a in fired))

    tracker.wait_until(settled, 180, "three bounces and a missed handoff, each delivery settled")
    fired = alerts()
    bounces = {a["alert_id"]: a for a in fired if a["rule"] == "channel_bounce"}
    handoff = next(a for a in fired if a["rule"] == "missed_handoff")

    # The healthy receiver got every alert once, whatever the dead ones did; routes by rule hold.
    assert sorted(healthy.received) == sorted(a["alert_id"] for a in fired)
    assert handoffs.received == [handoff["alert_id"]]
    assert not broken.received and not gone.received
    # The 410 is final (one attempt per alert, only ae-1's alerts: the team route); the 500 is
    # retried at most 3 times, and once it is down once per alert.
    assert gone.attempts == len(bouncers) and {a["owner"] for a in bounces.values()} == {"ae-1"}
    assert len(bouncers) <= broken.attempts < 3 * len(bouncers)

    # `journeys alerts` shows how each delivery ended and why; --failed lists only those.
    for alert in bounces.values():
        assert alert["delivery"] == "failed 2 of 3" and (alert["delivered"], alert["failed"]) == (1, 2)
        assert "(HTTP 410: channel_is_archived)" in alert["delivery_errors"]
        assert "(HTTP 500)" in alert["delivery_errors"] and "/hook" not in alert["delivery_errors"]
    assert handoff["delivery"] == "delivered" and handoff["delivery_errors"] == ""
    assert sorted(a["alert_id"] for a in alerts("--failed")) == sorted(bounces)
    table = tracker.journeys("alerts").stdout
    assert "failed 2 of 3" in table and "HTTP 410" in table
    # The UI and the API read the same report.
    api_rows = tracker.api("/api/v1/reports/alerts?failed=1")["rows"]
    assert sorted(r["alert_id"] for r in api_rows) == sorted(bounces)

    # Text from events reaches Slack escaped: no @here mention.
    raw = json.dumps(healthy.bodies)
    assert "<!here>" not in raw and "bouncer-&lt;!here&gt;&amp;co" in raw

    metrics = urllib.request.urlopen(f"http://127.0.0.1:{tracker.port}/metrics", timeout=10).read().decode()
    tenant = tracker.tenant  # the prefix names the tenant of every series
    failed = next(line for line in metrics.splitlines()
                  if line.startswith(f'journeys_alerts_failed_total{{channel="webhook",tenant="{tenant}"}}'))
    assert float(failed.split()[-1]) == 2 * len(bouncers)
