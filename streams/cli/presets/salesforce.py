"""Salesforce Data Loader / Data Export CSVs: API field names as headers (Lead, Opportunity, Task).

Field names from Salesforce's Object Reference and Field Reference (developer.salesforce.com:
Lead, Opportunity, OpportunityHistory, Task, "Call Centers and the API"); see docs/ingestion.md.
"""

from __future__ import annotations

from typing import Any

from streams.cli.presets.common import (
    Cells,
    Context,
    Preset,
    Unmappable,
    amount,
    deal_events,
    flag,
    timestamp,
)

LEAD_STATUS = {
    # Salesforce's default Lead Status picklist → our lead statuses.
    "open - not contacted": "mql",  # handed to sales, not yet touched: the handoff SLA starts
    "working - contacted": "accepted",
    "closed - converted": "sql",
    "closed - not converted": "rejected",
}


def lead(cells: Cells, ctx: Context) -> list[dict[str, Any]]:
    """A Lead row → one ``lead_status`` event at its last modification."""
    raw = cells.need("Status")
    status = LEAD_STATUS.get(raw.lower())
    if status is None:
        raise Unmappable("Status", f"{raw!r} has no mapping (known: {', '.join(sorted(LEAD_STATUS))})")
    converted = cells.get("ConvertedAccountId")
    event: dict[str, Any] = {
        "type": "lead_status",
        "leadId": cells.need("Id"),
        "status": status,
        "changedAt": timestamp(cells.get("LastModifiedDate", "CreatedDate"), "LastModifiedDate"),
        "changedBy": cells.get("LastModifiedById", "OwnerId"),
        "email": cells.get("Email"),
        "crmContactId": cells.get("ConvertedContactId"),
        "crmAccountId": converted,
        "leadSource": cells.get("LeadSource"),
    }
    if event["changedAt"] is None:
        raise Unmappable("LastModifiedDate", "empty (and no CreatedDate): no time for the status")
    if status == "rejected":
        event["reason"] = raw
    return [{k: v for k, v in event.items() if v is not None}]


def opportunity(cells: Cells, ctx: Context) -> list[dict[str, Any]]:
    """An Opportunity row → ``created`` plus ``stage_changed`` or ``closed_won``/``closed_lost``."""
    stage = cells.get("StageName")
    closed = None
    if flag(cells.get("IsClosed")) or (stage or "").lower() in ("closed won", "closed lost"):
        won = flag(cells.get("IsWon")) or (stage or "").lower() == "closed won"
        closed = "closed_won" if won else "closed_lost"
    money = {"amount": amount(cells.get("Amount"), "Amount")}
    if money["amount"] is not None:
        money["currency"] = cells.get("CurrencyIsoCode") or ctx.currency
    modified = timestamp(cells.get("LastModifiedDate"), "LastModifiedDate")
    return deal_events(
        deal_id=cells.need("Id"), account=cells.need("AccountId"), stage=stage, closed=closed,
        created=timestamp(cells.get("CreatedDate"), "CreatedDate"), modified=modified,
        closed_at=modified or timestamp(cells.get("CloseDate"), "CloseDate"), money=money,
        owner=cells.get("OwnerId"))


CHANNELS = {"call": "call", "email": "email"}
OUTCOMES = (("voicemail", "voicemail"), ("left message", "voicemail"), ("no answer", "no_answer"),
            ("meeting", "meeting_booked"), ("connected", "connected"), ("spoke", "connected"))


def task(cells: Cells, ctx: Context) -> list[dict[str, Any]]:
    """A completed call or email Task → one ``conversation`` (the rep is the task's owner)."""
    subtype = cells.get("TaskSubtype")
    channel = CHANNELS.get((subtype or "").lower())
    if channel is None:
        raise Unmappable("TaskSubtype", f"{subtype!r} is not a call or email task (Call, Email)")
    status = cells.get("Status")
    if status is not None and status.lower() != "completed":
        raise Unmappable("Status", f"{status!r}: only completed tasks are conversations that happened")
    call_type = (cells.get("CallType") or "outbound").lower()
    if call_type not in ("inbound", "outbound"):
        raise Unmappable("CallType", f"{call_type!r}: an internal call is not a buyer conversation")
    disposition = (cells.get("CallDisposition") or "").lower()
    outcome = next((ours for key, ours in OUTCOMES if key in disposition), "other" if disposition else None)
    who = cells.get("WhoId")
    owner = cells.need("OwnerId")
    started = timestamp(cells.get("CreatedDate"), "CreatedDate") or timestamp(cells.get("ActivityDate"),
                                                                               "ActivityDate")
    if started is None:
        raise Unmappable("CreatedDate", "empty (and no ActivityDate): no time for the conversation")
    event: dict[str, Any] = {
        "type": "conversation", "conversationId": cells.need("Id"), "channel": channel,
        "repId": owner, "repRole": ctx.role(owner), "direction": call_type, "startedAt": started,
        "durationSeconds": cells.get("CallDurationInSeconds"), "outcome": outcome,
        "subject": cells.get("Subject"), "crmContactId": who, "crmAccountId": cells.get("AccountId"),
        "source": "salesforce",
    }
    return [{k: v for k, v in event.items() if v is not None}]


PRESETS = (
    Preset("salesforce-lead", "Salesforce", "Lead", required=("Id", "Status", "LastModifiedDate"),
           optional=("Email", "LeadSource", "OwnerId", "ConvertedAccountId", "ConvertedContactId",
                     "LastModifiedById", "CreatedDate"), map_row=lead),
    Preset("salesforce-opportunity", "Salesforce", "Opportunity",
           required=("Id", "AccountId", "StageName", "CreatedDate"),
           optional=("Amount", "CurrencyIsoCode", "CloseDate", "IsClosed", "IsWon", "OwnerId", "LastModifiedDate"),
           map_row=opportunity),
    Preset("salesforce-task", "Salesforce", "Task", required=("Id", "OwnerId", "TaskSubtype", "CreatedDate"),
           optional=("WhoId", "AccountId", "Subject", "CallType", "CallDurationInSeconds", "CallDisposition",
                     "ActivityDate", "Status"), map_row=task),
)
