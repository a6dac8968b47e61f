"""Every alert rule on a real worker (issue 19): back to research after a sales conversation, a
buying-committee gap (and none on a deal closed won or lost, nor again when a deal with a gap is
won), a stalled opportunity fired by the timer with no further event, sales rejecting most MQLs
of a source — each stored once. The channel bounce and the missed handoff are in test_alerts.py."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import orjson
import pytest
import yaml

from schemas.definitions import DEFAULT_PATH

pytestmark = pytest.mark.integration


DAYS = 24 * 60  # minutes


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def test_each_alert_rule_fires_once_on_the_real_worker(tracker_factory, tmp_path) -> None:
    defs = yaml.safe_load(DEFAULT_PATH.read_text())
    defs["alerts"]["stalled_opportunity_days"] = 60 / 86400  # a minute
    path = tmp_path / "defs.yaml"
    path.write_text(yaml.safe_dump(defs))
    tracker = tracker_factory(JOURNEYS_DEFINITIONS=str(path), JOURNEYS_ALERT_TICK_SECONDS="1",
                              JOURNEYS_ALERT_IDLE_SECONDS="2").start()
    now = datetime.now(timezone.utc)

    def ago(minutes: float) -> str:
        return iso(now - timedelta(minutes=minutes))

    def call(account: str, minutes: float, n: int = 0) -> dict:
        return {"type": "conversation", "conversationId": f"{account}-call-{n}", "channel": "call", "repId": "ae-1",
                "repRole": "AE", "direction": "outbound", "startedAt": ago(minutes), "crmAccountId": account,
                "contactEmails": [f"pat@{account}.io"], "outcome": "connected"}

    def lead(account: str, lead_id: str, status: str, minutes: float, source: str = "events") -> dict:
        body = {"type": "lead_status", "leadId": lead_id, "status": status, "changedAt": ago(minutes),
                "crmAccountId": account, "email": f"{lead_id}@{account}.io", "leadSource": source}
        return body | ({"reason": "not a fit"} if status == "rejected" else {})

    def opportunity(account: str, action: str, minutes: float) -> dict:
        return {"type": "opportunity", "opportunityId": f"{account}-opp", "crmAccountId": account, "action": action,
                "amount": "1000.00", "currency": "EUR", "changedAt": ago(minutes), "ownerId": "ae-1"}

    events = [
        # back to research: the pricing page 10 minutes after a sales call
        {"type": "group", "messageId": "btr-group", "userId": "pat", "groupId": "btr-co", "timestamp": ago(40)},
        call("btr-co", 30),
        {"type": "page", "messageId": "btr-page", "userId": "pat", "groupId": "btr-co", "timestamp": ago(20),
         "name": "Pricing", "context": {"page": {"path": "/pricing"}}},
        # a committee gap: at SQL with no executive engaged
        lead("cg-co", "cg-lead", "sql", 30),
        # deals closed straight away, won and lost: closed, so no committee gap
        opportunity("won-co", "closed_won", 30), opportunity("lost-co", "closed_lost", 30),
        # a gap at SQL ten days ago (the deal is won below, past the gap's 7-day cooldown)
        lead("late-win", "lw-lead", "sql", DAYS * 10),
        # a stalled opportunity: its last touch 3 minutes ago, idle for more than a minute
        call("stall-co", 3), opportunity("stall-co", "created", 2.5),
        # sales reject both MQLs of one source
        lead("fair-a", "fa", "mql", 30, "fair"), lead("fair-b", "fb", "mql", 29, "fair"),
        lead("fair-a", "fa", "rejected", 20, "fair"), lead("fair-b", "fb", "rejected", 19, "fair"),
    ]
    tracker.produce([orjson.dumps(e) for e in events])
    tracker.wait_for_stored(events=len(events))

    def alerts() -> list[dict]:
        out = tracker.journeys("alerts", "--format", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []

    want = {("back_to_research", "btr-co"), ("committee_gap", "cg-co"), ("stalled_opportunity", "stall-co"),
            ("rejected_leads", "source:fair"), ("committee_gap", "late-win")}
    seen: set = set()

    def arrived() -> bool:
        seen.update((a["rule"], a["account_id"]) for a in alerts())
        return want <= seen

    try:
        tracker.wait_until(arrived, 150, f"the alerts {want}")
    except AssertionError:
        raise AssertionError(f"missing {want - seen}; fired {seen}") from None
    # the deal with a gap is won: no second gap (one fired at the won stage before closed deals
    # were exempt). Sent after its gap, which a closed deal arriving first would have prevented.
    won = [opportunity("late-win", "created", DAYS * 9.5), opportunity("late-win", "closed_won", 1)]
    tracker.produce([orjson.dumps(e) for e in won])
    tracker.wait_for_stored(events=len(events) + len(won))

    def late_win_stages() -> list[str]:
        rows = json.loads(tracker.journeys("stages", "late-win", "--format", "json").stdout or "[]")
        return [r["to_stage"] for r in rows]

    tracker.wait_until(lambda: "won" in late_win_stages(), 60, "late-win's deal won")
    time.sleep(4)  # more ticks and batches: nothing fires again
    fired = Counter((a["rule"], a["account_id"]) for a in alerts())
    assert all(fired[w] == 1 for w in want), fired
    assert not any(account in ("won-co", "lost-co") for _, account in fired), fired
    gaps = {a["account_id"]: a for a in alerts() if a["rule"] == "committee_gap"}
    assert "at sql with no engaged executive" in gaps["late-win"]["summary"]
    assert "executive" in gaps["cg-co"]["summary"]
    stalled = next(a for a in alerts() if a["rule"] == "stalled_opportunity" and a["account_id"] == "stall-co")
    assert stalled["owner"] == "ae-1" and "no activity" in stalled["summary"]
