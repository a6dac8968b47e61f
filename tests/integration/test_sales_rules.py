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


def test_renamed_stages_drive_the_funnel_handoff_attribution_and_alerts(tracker_factory, tmp_path) -> None:
    """A definitions file that calls the MQL 'mqa', the opportunity 'pipeline' and the closed deals
    'closed_won'/'closed_lost' (roles say what they mean): every answer follows the names."""
    defs = yaml.safe_load(DEFAULT_PATH.read_text())
    renamed = {"mql": "mqa", "opportunity": "pipeline", "won": "closed_won", "lost": "closed_lost"}
    for stage in defs["stages"]:
        stage["name"] = renamed.get(stage["name"], stage["name"])
    defs["sla"]["mql_first_touch_hours"] = 30 / 3600
    path = tmp_path / "defs.yaml"
    path.write_text(yaml.safe_dump(defs))
    tracker = tracker_factory(JOURNEYS_DEFINITIONS=str(path), JOURNEYS_ALERT_TICK_SECONDS="1",
                              JOURNEYS_ALERT_IDLE_SECONDS="2").start()
    now = datetime.now(timezone.utc)

    def at(minutes_ago: float) -> str:
        return iso(now - timedelta(minutes=minutes_ago))

    won = [{"type": "page", "messageId": "rn-ad", "anonymousId": "rn-dev", "timestamp": at(60), "name": "/",
            "context": {"page": {"path": "/"}, "campaign": {"source": "google", "medium": "cpc"}}},
           {"type": "identify", "messageId": "rn-id", "anonymousId": "rn-dev", "userId": "ann", "timestamp": at(59),
            "traits": {"email": "ann@renamed.io"}},
           {"type": "lead_status", "leadId": "rn-lead", "status": "mql", "changedAt": at(50), "email": "ann@renamed.io",
            "crmAccountId": "renamed-co", "leadSource": "paid search"},
           {"type": "conversation", "conversationId": "rn-call", "channel": "call", "repId": "sdr-9", "repRole": "SDR",
            "direction": "outbound", "startedAt": at(45), "contactEmails": ["ann@renamed.io"],
            "crmAccountId": "renamed-co", "outcome": "connected"},
           {"type": "opportunity", "opportunityId": "rn-opp", "crmAccountId": "renamed-co", "action": "created",
            "amount": "5000.00", "currency": "EUR", "changedAt": at(40), "ownerId": "ae-9"},
           {"type": "opportunity", "opportunityId": "rn-opp", "crmAccountId": "renamed-co", "action": "closed_won",
            "amount": "5000.00", "currency": "EUR", "changedAt": at(30), "ownerId": "ae-9"}]
    waiting = [{"type": "lead_status", "leadId": "rn-wait", "status": "mql", "changedAt": at(20),
                "email": "kim@waiting.io", "crmAccountId": "waiting-co", "leadSource": "webinar"}]
    tracker.produce([orjson.dumps(e) for e in won + waiting])
    tracker.wait_for_stored(events=len(won) + len(waiting))

    def report(name: str, *args: str) -> list[dict]:
        out = tracker.journeys(name, *args, "--format", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []

    tracker.wait_until(lambda: any(a["rule"] == "missed_handoff" and a["account_id"] == "waiting-co"
                                   for a in report("alerts")), 120, "the missed handoff of the renamed MQA")
    funnel = {r["group_key"]: r for r in report("funnel")}
    assert funnel["paid search"]["closed_won"] == 1 and funnel["paid search"]["mqa"] == 1
    assert "mql" not in funnel["paid search"] and "won" not in funnel["paid search"]
    handoff = report("handoff")
    assert [(r["rep"], r["touched"]) for r in handoff if r["rep"] == "sdr-9"] == [("sdr-9", 1)]
    first = report("attribution", "--model", "first_touch")
    assert [(r["channel"], r["credit"]) for r in first] == [("ads", 5000.0)]
    w = {r["channel"]: r["credit"] for r in report("attribution", "--model", "w_shaped")}
    # first 30% + lead creation (last touch at or before the MQA) 30%: the ad; opportunity creation 30%:
    # the call; the rest (10%) shared by both
    assert w == {"ads": 3250.0, "call": 1750.0}, w


def test_a_new_definitions_version_applies_without_a_restart(tracker_factory, tmp_path) -> None:
    defs = yaml.safe_load(DEFAULT_PATH.read_text())
    path = tmp_path / "defs.yaml"
    path.write_text(yaml.safe_dump(defs))
    tracker = tracker_factory(JOURNEYS_DEFINITIONS=str(path), JOURNEYS_DEFINITIONS_RELOAD_SECONDS="1").start()
    now = datetime.now(timezone.utc)

    def four_pages(account: str) -> list[dict]:  # 4 × 6 points: engaged under 2026.1, an MQL at 20
        return [{"type": "group", "messageId": f"{account}-g", "userId": f"{account}-u", "groupId": account,
                 "timestamp": iso(now - timedelta(minutes=10))}] + [
            {"type": "page", "messageId": f"{account}-p{i}", "userId": f"{account}-u", "groupId": account,
             "timestamp": iso(now - timedelta(minutes=9 - i)), "name": "Pricing", "context": {"page": {"path": "/pricing"}}}
            for i in range(4)]

    def stages(account: str) -> list[tuple[str, str]]:
        rows = json.loads(tracker.journeys("stages", account, "--format", "json").stdout or "[]")
        return sorted((r["to_stage"], r["definitions_version"]) for r in rows)

    tracker.produce([orjson.dumps(e) for e in four_pages("before-co")])
    tracker.wait_until(lambda: stages("before-co") == [("engaged", "2026.1")], 60, "before-co engaged")
    for stage in defs["stages"]:
        if stage["name"] == "mql":
            stage["when"][0]["score_at_least"] = 20
    path.write_text(yaml.safe_dump(defs))  # the same version with other rules: refused
    time.sleep(3)
    defs["version"] = "2026.2"
    path.write_text(yaml.safe_dump(defs))
    time.sleep(3)  # the reload timer runs every second
    tracker.produce([orjson.dumps(e) for e in four_pages("after-co")])
    tracker.wait_until(lambda: ("mql", "2026.2") in stages("after-co"), 60, "after-co an MQL under 2026.2")
    assert stages("before-co") == [("engaged", "2026.1")]
    log = tracker.log_tail(400)
    assert "changed without a new version" in log and "version 2026.1 → 2026.2" in log


def test_definitions_backfill_keeps_its_comparison_for_the_ui(tracker_factory, tmp_path) -> None:
    tracker = tracker_factory().start()
    now = datetime.now(timezone.utc)

    def pages(account: str, n: int) -> list[dict]:
        return [{"type": "group", "messageId": f"{account}-g", "userId": f"{account}-u", "groupId": account,
                 "timestamp": iso(now - timedelta(minutes=30))}] + [
            {"type": "page", "messageId": f"{account}-p{i}", "userId": f"{account}-u", "groupId": account,
             "timestamp": iso(now - timedelta(minutes=20 - i)), "name": "Pricing",
             "context": {"page": {"path": "/pricing"}}} for i in range(n)]

    events = pages("bf-a", 4) + pages("bf-b", 8)  # 24 and 48 points: one MQL now, two at a threshold of 20
    # The pages go first, the group calls (the earliest events) after them: the stream knows no
    # account for the pages when it stores them (journey_account_id ''), the one resolution does.
    # (In a loaded CI run the processing order did this by chance, and the backfill, which read
    # the stream's account, found no MQL under the new version.)
    groups = [e for e in events if e["type"] == "group"]
    tracker.produce([orjson.dumps(e) for e in events if e["type"] != "group"])
    tracker.wait_for_stored(events=len(events) - len(groups))
    tracker.produce([orjson.dumps(e) for e in groups])
    tracker.wait_for_stored(events=len(events))
    tracker.wait_until(lambda: len(json.loads(tracker.journeys("stages", "bf-b", "--format", "json").stdout or "[]")) >= 2,
                       60, "bf-b's stages")
    tracker.stop()  # backfill reads the embedded store itself
    defs = yaml.safe_load(DEFAULT_PATH.read_text())
    defs["version"] = "2026.2-low"
    for stage in defs["stages"]:
        if stage["name"] == "mql":
            stage["when"][0]["score_at_least"] = 20
    other = tmp_path / "low.yaml"
    other.write_text(yaml.safe_dump(defs))
    span = ["--from", (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S"),
            "--to", (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")]
    run = tracker.journeys("definitions", "backfill", "--version", str(other), *span, "--format", "json", check=False)
    assert run.returncode == 0, run.stderr[-700:]
    printed = json.loads(run.stdout)
    mql = next(r for r in printed if r["stage"] == "mql")
    assert (mql["recorded_accounts"], mql["accounts_under_2026.2-low"], mql["difference"]) == (1, 2, 1)
    tracker.start()
    rows = tracker.api("/api/v1/reports/definitions-comparisons")["rows"]
    kept = {r["stage"]: r for r in rows}
    assert (kept["mql"]["recorded_accounts"], kept["mql"]["accounts"], kept["mql"]["difference"]) == (1, 2, 1)
    assert kept["mql"]["version"] == "2026.2-low" and kept["mql"]["recorded_version"] == "2026.1"
    assert len({r["run_id"] for r in rows}) == 1
