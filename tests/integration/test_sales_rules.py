"""Journey rules a sales manager can trust (issue 19), on the real worker, broker and store:
a rep's 1:1 email is the sales follow-up of an MQL (no missed-handoff alert, a human touch on
the timeline), each contact has its own score (`journeys contacts`), and a lead sales rejected
does not become an MQL again on its next page views."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import orjson
import pytest
import yaml

from schemas.definitions import DEFAULT_PATH

pytestmark = pytest.mark.integration


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def test_a_rep_email_is_the_handoff_and_a_rejected_lead_needs_new_engagement(tracker_factory, tmp_path) -> None:
    defs = yaml.safe_load(DEFAULT_PATH.read_text())
    defs["sla"]["mql_first_touch_hours"] = 30 / 3600  # 30 seconds
    path = tmp_path / "defs.yaml"
    path.write_text(yaml.safe_dump(defs))
    tracker = tracker_factory(JOURNEYS_DEFINITIONS=str(path), JOURNEYS_ALERT_TICK_SECONDS="1",
                              JOURNEYS_ALERT_IDLE_SECONDS="2").start()
    now = datetime.now(timezone.utc)

    def pages(account: str, user: str, minutes_ago: list[float]) -> list[dict]:
        group = {"type": "group", "messageId": f"{account}-group", "userId": user, "groupId": account,
                 "timestamp": iso(now - timedelta(minutes=40))}
        return [group] + [{"type": "page", "messageId": f"{account}-page-{i}", "userId": user, "groupId": account,
                 "timestamp": iso(now - timedelta(minutes=m)), "name": "Pricing",
                 "context": {"page": {"path": "/pricing"}}} for i, m in enumerate(minutes_ago)]

    mql_pages = [30 - i for i in range(7)]  # 7 × 6 points: an MQL by score at 24 minutes ago
    events = pages("email-co", "eve", mql_pages) + [
        {"type": "conversation", "conversationId": "sdr-email-1", "channel": "email", "repId": "sdr-1",
         "repRole": "SDR", "direction": "outbound", "startedAt": iso(now - timedelta(minutes=20)),
         "outcome": "replied", "crmAccountId": "email-co", "contactEmails": ["eve@email-co.io"]},
    ]
    events += [{"type": "identify", "messageId": "eve-identify", "userId": "eve",
                "timestamp": iso(now - timedelta(minutes=35)), "traits": {"email": "eve@email-co.io", "title": "VP Sales"}},
               {"type": "page", "messageId": "ed-page", "userId": "ed", "groupId": "email-co",
                "timestamp": iso(now - timedelta(minutes=29)), "name": "Docs", "context": {"page": {"path": "/docs"}}},
               {"type": "group", "messageId": "ed-group", "userId": "ed", "groupId": "email-co",
                "timestamp": iso(now - timedelta(minutes=39))}]
    events += pages("silent-co", "sam", mql_pages)  # the control: no follow-up at all
    events += pages("recycle-co", "rob", mql_pages) + [
        {"type": "lead_status", "leadId": "lead-rob", "status": "rejected", "reason": "no budget",
         "changedAt": iso(now - timedelta(minutes=15)), "crmAccountId": "recycle-co", "email": "rob@recycle-co.io",
         "changedBy": "sdr-1"},
    ] + [dict(p, messageId=f"recycle-co-after-{i}") for i, p in enumerate(pages("recycle-co", "rob", [10, 9])[1:])]
    tracker.produce([orjson.dumps(e) for e in events])
    tracker.wait_for_stored(events=len(events))

    def alerts() -> list[dict]:
        out = tracker.journeys("alerts", "--format", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []

    tracker.wait_until(lambda: any(a["rule"] == "missed_handoff" and a["account_id"] == "silent-co" for a in alerts()),
                       120, "the control account's missed-handoff alert")
    time.sleep(3)  # more timer ticks: the account with the rep's email must stay quiet
    fired = {(a["rule"], a["account_id"]) for a in alerts()}
    assert ("missed_handoff", "email-co") not in fired
    assert ("missed_handoff", "recycle-co") not in fired  # rejected: no longer an MQL waiting for sales

    timeline = json.loads(tracker.journeys("timeline", "email-co", "--format", "json").stdout)
    follow_up = [r for r in timeline if r["event_type"] == "conversation"]
    assert [(r["channel"], r["side"]) for r in follow_up] == [("sales_email", "human")]

    # each contact's own score: eve (7 pricing pages and the SDR's email), ed (one docs page)
    contacts = json.loads(tracker.journeys("contacts", "email-co", "--format", "json").stdout)
    assert [(c["contact_id"], c["persona"], c["title"]) for c in contacts][:1] == [("eve", "executive", "VP Sales")]
    by_id = {c["contact_id"]: c for c in contacts}
    assert by_id["eve"]["score_at_last_touch"] > by_id["ed"]["score_at_last_touch"] > 0
    assert by_id["eve"]["engaged"] and not by_id["ed"]["engaged"]

    def stages(account: str) -> list[dict]:
        rows = json.loads(tracker.journeys("stages", account, "--format", "json").stdout or "[]")
        return sorted(rows, key=lambda r: r["at"])

    tracker.wait_until(lambda: len(stages("recycle-co")) >= 4, 60, "recycle-co's stage changes")
    time.sleep(2)
    history = stages("recycle-co")
    assert [r["to_stage"] for r in history] == ["engaged", "mql", "recycled", "engaged"], history
    assert history[-1]["rule"] == "score >= 10 (engagement since recycled)"
