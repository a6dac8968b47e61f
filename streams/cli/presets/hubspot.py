"""HubSpot exports (deals, contacts, companies, calls, meetings, emails) → events. Pure.

HubSpot's export tool names each column after the property's label ("Deal Stage", "Activity
date"); exported with internal names, they are the property names (``dealstage``,
``hs_timestamp``). Every column below accepts both. Associated records come as ``;``-separated
ids ("Associated Company IDs", with "(Primary)" for the primary association); the first id is
used. HubSpot record ids are numbers shared by every object type, so ids are prefixed:
``hubspot-contact-51``, ``hubspot-company-77``, ``hubspot-deal-9``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from streams.cli.presets.core import Cells, Context, Preset, Unmappable, amount, ids, lookup, when

SOURCE = "hubspot"

LIFECYCLE = {
    "subscriber": "", "lead": "new", "marketingqualifiedlead": "mql", "Marketing Qualified Lead": "mql",
    "salesqualifiedlead": "sql", "Sales Qualified Lead": "sql", "opportunity": "", "customer": "",
    "evangelist": "", "other": "",
}  # fmt: skip
"""Lifecycle stage → lead status ('' = no lead status: deals tell the rest)."""

BECAME = (("Became a Lead Date", "new"), ("Became a Marketing Qualified Lead Date", "mql"),
          ("Became a Sales Qualified Lead Date", "sql"))
"""Lifecycle history columns: one lead status each, at its date."""

LEAD_STATUS = {
    "NEW": "new", "OPEN": "new", "IN_PROGRESS": "accepted", "In Progress": "accepted",
    "ATTEMPTED_TO_CONTACT": "accepted", "Attempted to Contact": "accepted", "CONNECTED": "accepted",
    "OPEN_DEAL": "sql", "Open Deal": "sql", "UNQUALIFIED": "disqualified", "BAD_TIMING": "recycled",
    "Bad Timing": "recycled",
}  # fmt: skip
"""``Lead Status`` (``hs_lead_status``) values and labels → ours (``crm_values.lead_status``)."""

FORWARD = {"new": 0, "mql": 1, "accepted": 2, "sql": 3}
"""The forward lead statuses in order: a Lead Status the lifecycle dates already passed is left out."""

STAGE = {"closedwon": "won", "Closed Won": "won", "closedlost": "lost", "Closed Lost": "lost"}
"""``Deal Stage`` → won / lost (default pipeline's ids and labels); others are open."""

OUTCOME = {
    # call outcomes: default labels and their internal ids (hs_call_disposition)
    "Connected": "connected", "f240bbac-87c9-4f6e-bf70-924b57d47db7": "connected",
    "Busy": "no_answer", "9d9162e7-6cf3-4944-bf63-4dff82258764": "no_answer",
    "Left live message": "voicemail", "a4c4c377-d246-4b32-a13b-75a56a4cd0ff": "voicemail",
    "Left voicemail": "voicemail", "b2cf5968-551e-4856-9783-52b3da59a7d0": "voicemail",
    "No answer": "no_answer", "73a0d17f-1163-4015-bdd5-ec830791da20": "no_answer",
    "Wrong number": "other", "17b47fee-58de-441e-a44c-c6300d46f273": "other",
    # meeting outcomes (hs_meeting_outcome)
    "COMPLETED": "meeting_held", "Completed": "meeting_held", "SCHEDULED": "meeting_booked",
    "Scheduled": "meeting_booked", "NO_SHOW": "no_show", "No show": "no_show", "RESCHEDULED": "other",
    "Rescheduled": "other", "CANCELED": "other", "Canceled": "other",
}  # fmt: skip
"""Call and meeting outcomes → ours (``crm_values.call_outcome``); unknown ones are ``other``."""


def key(kind: str, record_id: str) -> str:
    return f"{SOURCE}-{kind}-{record_id}"


def _first(r: Cells, column: str) -> str:
    found = ids(r.get(column))
    return found[0] if found else ""


# -- contacts, companies -----------------------------------------------------------------------


def _lead_status(value: str, ctx: Context, column: str, table: dict[str, str]) -> str:
    status = lookup(table, ctx.values.lead_status, value)
    if status is None:
        raise Unmappable(column, f"{value!r} has no mapping; add it under crm_values.lead_status in the "
                                 "definitions file")
    return status


def contact(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    """identify (email, name, job title) + group (primary company) + lead statuses: one per
    "Became a … Date" column, else the lifecycle stage; then the ``Lead Status`` (sales' view)
    at "Last Modified Date", unless it is a forward status the lifecycle already passed."""
    person, created = key("contact", r.need("Record ID")), when(r.need("Create Date"), "Create Date")
    version = r.get("Last Modified Date") or created
    company = key("company", _first(r, "Associated Company IDs")) if r.get("Associated Company IDs") else ""
    traits = {"email": r.get("Email"), "firstName": r.get("First Name"), "lastName": r.get("Last Name"),
              "title": r.get("Job Title")}
    events: list[dict[str, Any]] = [{"type": "identify", "messageId": f"{person}:{version}", "userId": person,
                                     "timestamp": created, "traits": {k: v for k, v in traits.items() if v}}]
    if company:
        events.append({"type": "group", "messageId": f"{person}:group:{version}", "userId": person,
                       "groupId": company, "timestamp": created})
    base = {"type": "lead_status", "leadId": person, "crmContactId": person}
    for name, value in (("crmAccountId", company), ("changedBy", r.get("Contact owner")),
                        ("leadSource", r.get("Original Source"))):
        if value:
            base[name] = value
    statuses = [(when(r.get(column), column), status) for column, status in BECAME if r.get(column)]
    last = when(r.get("Last Modified Date"), "Last Modified Date") if r.get("Last Modified Date") else created
    if not statuses and r.get("Lifecycle Stage"):
        status = _lead_status(r.get("Lifecycle Stage"), ctx, "Lifecycle Stage", LIFECYCLE)
        if status:
            statuses.append((last, status))
    if r.get("Lead Status"):
        status = _lead_status(r.get("Lead Status"), ctx, "Lead Status", LEAD_STATUS)
        # its time is unknown (Last Modified Date at best): a status the lifecycle already passed
        # (In Progress after Sales Qualified Lead) would move the journey back, so it is left out
        passed = any(FORWARD.get(s, -1) >= FORWARD[status] for _, s in statuses) if status in FORWARD else False
        if not passed:
            statuses.append((max([last, *(t for t, _ in statuses)]), status))
    for at, status in statuses:
        events.append({**base, "status": status, "changedAt": at,
                       **({"reason": r.get("Lead Status") or "rejected"} if status == "rejected" else {})})
    return events


def company(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    """A company's traits as a group call; its user is the company record itself."""
    account, created = key("company", r.need("Record ID")), when(r.need("Create Date"), "Create Date")
    traits = {"name": r.get("Company name"), "domain": r.get("Company Domain Name"), "industry": r.get("Industry"),
              "employees": r.get("Number of Employees")}
    return [{"type": "group", "messageId": f"{account}:{r.get('Last Modified Date') or created}",
             "userId": account, "groupId": account, "timestamp": created,
             "traits": {k: v for k, v in traits.items() if v}}]


# -- deals ---------------------------------------------------------------------------------------


def deal(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    """Created at "Create Date"; then closed won/lost at "Close Date", or the open stage at
    "Last Modified Date". The account is the first associated company."""
    if not r.get("Associated Company IDs"):
        raise Unmappable("Associated Company IDs", "is empty: a deal needs its company (export with associations)")
    base = {"type": "opportunity", "opportunityId": key("deal", r.need("Record ID")),
            "crmAccountId": key("company", _first(r, "Associated Company IDs"))}
    if r.get("Deal owner"):
        base["ownerId"] = r.get("Deal owner")
    created = when(r.need("Create Date"), "Create Date")
    stage = r.need("Deal Stage")
    state = lookup(STAGE, ctx.values.opportunity_stage, stage) or "open"
    events = [{**base, "action": "created", "changedAt": created}]
    if state != "open":
        closed = max(created, when(r.need("Close Date"), "Close Date"))
        last = {**base, "action": f"closed_{state}", "stage": stage, "changedAt": closed}
        if state == "lost" and r.get("Closed Lost Reason"):
            last["reason"] = r.get("Closed Lost Reason")[:1024]
        events.append(last)
    elif r.get("Last Modified Date"):
        changed = max(created, when(r.get("Last Modified Date"), "Last Modified Date"))
        events.append({**base, "action": "stage_changed", "stage": stage, "changedAt": changed})
    amount(events[-1], r.get("Amount"), r.get("Currency"), ctx)
    return events


# -- calls, meetings, emails ---------------------------------------------------------------------


def _activity(r: Cells, ctx: Context, kind: str, channel: str) -> dict[str, Any]:
    owner = r.need("Activity assigned to")
    event: dict[str, Any] = {"type": "conversation", "conversationId": key(kind, r.need("Record ID")),
                             "channel": channel, "repId": owner, "repRole": ctx.role(owner),
                             "direction": "outbound", "startedAt": when(r.need("Activity date"), "Activity date"),
                             "source": SOURCE}
    if r.get("Associated Contact IDs"):
        event["crmContactId"] = key("contact", _first(r, "Associated Contact IDs"))
    if r.get("Associated Company IDs"):
        event["crmAccountId"] = key("company", _first(r, "Associated Company IDs"))
    if "crmContactId" not in event and "crmAccountId" not in event:
        raise Unmappable("Associated Contact IDs", "no associated contact or company (export with associations)")
    return event


def _duration(value: str) -> int | None:
    """HubSpot's call duration: milliseconds, or ``H:MM:SS`` as some exports format it."""
    if value.isdigit():
        return int(value) // 1000
    parts = re.fullmatch(r"(\d+):(\d{1,2}):(\d{1,2})", value)
    if parts:
        h, m, s = (int(x) for x in parts.groups())
        return h * 3600 + m * 60 + s
    return None


def call(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    event = _activity(r, ctx, "call", "call")
    if r.get("Call direction").upper() == "INBOUND":
        event["direction"] = "inbound"
    seconds = _duration(r.get("Call duration"))
    if seconds is not None:
        event["durationSeconds"] = seconds
    if r.get("Call outcome"):
        event["outcome"] = lookup(OUTCOME, ctx.values.call_outcome, r.get("Call outcome")) or "other"
    if r.get("Call title"):
        event["subject"] = r.get("Call title")[:1024]
    return [event]


def meeting(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    event = _activity(r, ctx, "meeting", "meeting")
    if r.get("Meeting outcome"):
        event["outcome"] = lookup(OUTCOME, ctx.values.call_outcome, r.get("Meeting outcome")) or "other"
    if r.get("Meeting name"):
        event["subject"] = r.get("Meeting name")[:1024]
    if r.get("Meeting start time") and r.get("Meeting end time"):
        start, end = (datetime.fromisoformat(when(r.get(c), c).replace("Z", "+00:00"))
                      for c in ("Meeting start time", "Meeting end time"))
        event["durationSeconds"] = max(0, int((end - start).total_seconds()))
    return [event]


def email(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    """A logged 1:1 email; an incoming one (``INCOMING_EMAIL``) is the contact's reply."""
    event = _activity(r, ctx, "email", "email")
    direction = r.get("Email direction").upper()
    if "INCOMING" in direction or "REPLY" in direction:
        event["direction"], event["outcome"] = "inbound", "replied"
    if r.get("Email subject"):
        event["subject"] = r.get("Email subject")[:1024]
    return [event]


ASSOCIATED_CONTACTS = ("Associated Contact IDs", "Associated Contact IDs (Primary)", "Associated Contact ID")
ASSOCIATED_COMPANIES = ("Associated Company IDs (Primary)", "Associated Company ID", "associatedcompanyid",
                        "Primary Associated Company ID")
ACTIVITY = {"Record ID": ("hs_object_id",), "Activity date": ("hs_timestamp",),
            "Activity assigned to": ("hubspot_owner_id", "Call owner", "HubSpot owner"), "Associated Contact IDs": ASSOCIATED_CONTACTS[1:],
            "Associated Company IDs": ASSOCIATED_COMPANIES}
ACTIVITY_REQUIRED = ("Record ID", "Activity date", "Activity assigned to")

PRESETS = (
    Preset("hubspot-deals", "deals: created + current stage or close", {
        "Record ID": ("hs_object_id",), "Deal Name": ("dealname",), "Deal Stage": ("dealstage",),
        "Pipeline": ("pipeline",), "Amount": ("amount",), "Currency": ("deal_currency_code",),
        "Close Date": ("closedate",), "Create Date": ("createdate",),
        "Last Modified Date": ("hs_lastmodifieddate",), "Deal owner": ("hubspot_owner_id",),
        "Closed Lost Reason": ("closed_lost_reason",), "Associated Company IDs": ASSOCIATED_COMPANIES},
        ("Record ID", "Deal Stage", "Close Date", "Create Date", "Associated Company IDs"), deal),
    Preset("hubspot-contacts", "contacts: identify + company + lead statuses", {
        "Record ID": ("hs_object_id",), "Email": ("email",), "First Name": ("firstname",),
        "Last Name": ("lastname",), "Job Title": ("jobtitle",), "Contact owner": ("hubspot_owner_id",),
        "Lifecycle Stage": ("lifecyclestage",), "Lead Status": ("hs_lead_status",),
        "Original Source": ("hs_analytics_source",), "Create Date": ("createdate",),
        "Last Modified Date": ("lastmodifieddate",),
        "Became a Lead Date": ("hs_lifecyclestage_lead_date",),
        "Became a Marketing Qualified Lead Date": ("hs_lifecyclestage_marketingqualifiedlead_date",),
        "Became a Sales Qualified Lead Date": ("hs_lifecyclestage_salesqualifiedlead_date",),
        "Associated Company IDs": ASSOCIATED_COMPANIES},
        ("Record ID", "Email", "Create Date"), contact),
    Preset("hubspot-companies", "companies: group traits", {
        "Record ID": ("hs_object_id",), "Company name": ("name",), "Company Domain Name": ("domain",),
        "Industry": ("industry",), "Number of Employees": ("numberofemployees",),
        "Company owner": ("hubspot_owner_id",), "Create Date": ("createdate",),
        "Last Modified Date": ("hs_lastmodifieddate",)},
        ("Record ID", "Company name", "Create Date"), company),
    Preset("hubspot-calls", "calls", {
        **ACTIVITY, "Call title": ("hs_call_title",), "Call direction": ("hs_call_direction",),
        "Call duration": ("hs_call_duration",), "Call outcome": ("hs_call_disposition",),
        "Call status": ("hs_call_status",)},
        ACTIVITY_REQUIRED, call),
    Preset("hubspot-meetings", "meetings", {
        **ACTIVITY, "Meeting name": ("hs_meeting_title", "Meeting title"), "Meeting outcome": ("hs_meeting_outcome",),
        "Meeting start time": ("hs_meeting_start_time",), "Meeting end time": ("hs_meeting_end_time",)},
        ACTIVITY_REQUIRED, meeting),
    Preset("hubspot-emails", "1:1 sales emails", {
        **ACTIVITY, "Email subject": ("hs_email_subject",), "Email direction": ("hs_email_direction",)},
        ACTIVITY_REQUIRED, email),
)
