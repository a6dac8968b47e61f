"""Regenerate streams/demo_data/sample.ndjson (the bundled demo activity). Deterministic."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

T0 = datetime(2026, 10, 5, 9, 0, tzinfo=timezone.utc)
OUT = Path(__file__).resolve().parents[1] / "streams" / "demo_data" / "sample.ndjson"
lines: list[str] = []
n = 0


def at(days: float, hours: float = 0) -> str:
    return (T0 + timedelta(days=days, hours=hours)).isoformat().replace("+00:00", "Z")


def seg(kind: str, when: str, **fields) -> None:
    global n
    n += 1
    body = {"type": kind, "messageId": f"demo-{n:04d}", "timestamp": when, **fields}
    lines.append(json.dumps(body))


def crm(kind: str, **fields) -> None:
    lines.append(json.dumps({"type": kind, **fields}))


def page(when, anon=None, user=None, path="/", name=None, campaign=None, group=None):
    ctx = {"page": {"path": path, "url": f"https://tracker.example{path}"}}
    if campaign:
        ctx["campaign"] = campaign
    fields = {"context": ctx, "name": name or path}
    if anon:
        fields["anonymousId"] = anon
    if user:
        fields["userId"] = user
    seg("page", when, **fields)


accounts = [
    ("acme-corp", "acme.com", "Acme Corp", [("jane", "Jane Doe", "VP Marketing"), ("raj", "Raj Patel", "CTO")]),
    ("globex", "globex.com", "Globex", [("li", "Li Wei", "Head of Sales Ops")]),
    ("initech", "initech.com", "Initech", [("bill", "Bill Lumbergh", "Director IT")]),
]
for a_i, (acct, domain, company, people) in enumerate(accounts):
    d0 = a_i * 2
    for p_i, (pid, name, title) in enumerate(people):
        anon = f"anon-{pid}"
        email = f"{pid}@{domain}"
        user = f"user-{pid}"
        base = d0 + p_i
        page(at(base), anon=anon, path="/", campaign={"source": "google", "medium": "cpc", "name": "brand"})
        page(at(base, 0.2), anon=anon, path="/blog/buyer-journeys")
        page(at(base + 1), anon=anon, path="/pricing", name="Pricing")
        seg("track", at(base + 1, 0.5), anonymousId=anon, event="Whitepaper Downloaded",
            properties={"title": "The B2B buyer journey", "email": email})
        seg("identify", at(base + 1, 0.51), anonymousId=anon, userId=user,
            traits={"email": email, "name": name, "title": title, "company": company})
        seg("group", at(base + 1, 0.52), userId=user, groupId=acct, traits={"name": company, "domain": domain})
        seg("track", at(base + 3), userId=user, event="Webinar Attended", properties={"webinar": "Journeys 101"})
    lead = people[0]
    email = f"{lead[0]}@{domain}"
    crm("lead_status", leadId=f"lead-{lead[0]}", status="mql", changedAt=at(d0 + 3, 1), email=email,
        crmAccountId=acct, leadSource="webinar")
    crm("lead_status", leadId=f"lead-{lead[0]}", status="accepted", changedAt=at(d0 + 3, 5), email=email,
        crmAccountId=acct, changedBy="rep-sam", leadSource="webinar")
    crm("conversation", conversationId=f"call-{acct}", channel="call", repId="rep-sam", repRole="SDR",
        direction="outbound", startedAt=at(d0 + 4), durationSeconds=900, outcome="meeting_booked",
        contactEmails=[email], crmAccountId=acct)
    crm("conversation", conversationId=f"meet-{acct}", channel="meeting", repId="rep-alex", repRole="AE",
        direction="outbound", startedAt=at(d0 + 7), durationSeconds=3600, outcome="meeting_held",
        contactEmails=[email], crmAccountId=acct)
    page(at(d0 + 8), user=f"user-{lead[0]}", path="/compare/competitor", name="Comparison")
    page(at(d0 + 8, 0.1), user=f"user-{lead[0]}", path="/pricing", name="Pricing")
    if acct == "acme-corp":  # back to self-research after the AE meeting, then another call: a bounce
        crm("conversation", conversationId=f"followup-{acct}", channel="call", repId="rep-alex", repRole="AE",
            direction="outbound", startedAt=at(d0 + 8, 3), durationSeconds=600, outcome="connected",
            contactEmails=[email], crmAccountId=acct)
    crm("opportunity", opportunityId=f"opp-{acct}", crmAccountId=acct, action="created", stage="discovery",
        amount="48000.00", currency="EUR", changedAt=at(d0 + 9), ownerId="rep-alex")
    if acct == "acme-corp":
        crm("opportunity", opportunityId=f"opp-{acct}", crmAccountId=acct, action="closed_won", stage="won",
            amount="52000.00", currency="EUR", changedAt=at(d0 + 30), ownerId="rep-alex")
    if acct == "globex":
        crm("lead_status", leadId="lead-x", status="rejected", reason="student, not a buyer",
            changedAt=at(d0 + 5), email="kid@gmail.com", changedBy="rep-sam", leadSource="ads")

# Umbrella: an ads-sourced MQL that nobody calls (missed handoff), and ads leads sales rejects.
page(at(20), anon="anon-alice", path="/pricing", name="Pricing", campaign={"source": "linkedin", "medium": "paid"})
seg("identify", at(20, 0.2), anonymousId="anon-alice", userId="user-alice",
    traits={"email": "alice@umbrella.io", "title": "CFO", "company": "Umbrella"})
seg("group", at(20, 0.3), userId="user-alice", groupId="umbrella", traits={"name": "Umbrella", "employees": 900})
crm("lead_status", leadId="lead-alice", status="mql", changedAt=at(20, 1), email="alice@umbrella.io",
    crmAccountId="umbrella", leadSource="ads")
for i, who in enumerate(["tom@hooli.com", "zed@gmail.com"]):
    crm("lead_status", leadId=f"lead-ads-{i}", status="mql", changedAt=at(21 + i), email=who, leadSource="ads")
    crm("lead_status", leadId=f"lead-ads-{i}", status="rejected", reason="not a buyer", changedAt=at(21 + i, 4),
        email=who, changedBy="rep-sam", leadSource="ads")

# Deliberately bad inputs: they must end in the dead-letter table with reasons.
lines.append('{"type": "track", "messageId": "bad-1", "anonymousId": "x", "event": "Signup", "timestamp": "yesterday"}')
lines.append('{"type": "conversation", "conversationId": "c-9", "channel": "fax"}')
lines.append('this is not json')

OUT.write_text("\n".join(lines) + "\n")
print(f"wrote {len(lines)} lines to {OUT}")
