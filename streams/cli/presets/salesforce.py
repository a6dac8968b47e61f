"""Salesforce Data Loader exports (API field names) → events. Pure.

Field names as in Salesforce's Object Reference (Lead, LeadHistory, Opportunity,
OpportunityHistory, OpportunityFieldHistory, Task, Event, Contact, Account). Salesforce ids
are unique across objects, so they are used as they are: a Contact's ``Id`` is its person, an
``AccountId`` its account, a Lead's ``Id`` the lead's person until it is converted; a converted
lead's person is the contact it became (``ConvertedContactId``), and its ``Id`` an alias of it.
History objects hold only their parent's id: export the parent's account with a relationship
column (``Opportunity.AccountId``, ``Lead.ConvertedAccountId``, ``Lead.ConvertedContactId``) in
the Data Loader query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streams.cli.presets.core import Cells, Context, Preset, Unmappable, amount, lookup, truthy, when

SOURCE = "salesforce"

LEAD_STATUS = {
    # the four values of a new org's Lead Status picklist
    "Open - Not Contacted": "new",
    "Working - Contacted": "accepted",
    "Closed - Converted": "sql",
    "Closed - Not Converted": "rejected",
    # values many orgs add
    "Open": "new", "New": "new", "Contacted": "accepted", "Working": "accepted", "Qualified": "sql",
    "Unqualified": "disqualified", "Disqualified": "disqualified", "Nurturing": "recycled",
    "Recycled": "recycled", "MQL": "mql", "Marketing Qualified": "mql", "SQL": "sql",
}  # fmt: skip
"""Lead ``Status`` → ours; a status mapped to ``rejected`` is its own reason. Extend or override
with ``crm_values.lead_status`` in the definitions file."""

STAGE = {"Closed Won": "won", "Closed Lost": "lost"}
"""``StageName`` → won / lost; any other stage is open (``crm_values.opportunity_stage``)."""

CALL_RESULT = {
    "Connected": "connected", "Left Voicemail": "voicemail", "Left Message": "voicemail",
    "Left live message": "voicemail", "No Answer": "no_answer", "Busy": "no_answer",
    "Wrong Number": "other", "Meeting Booked": "meeting_booked", "Meeting Scheduled": "meeting_booked",
    "Not Interested": "disqualified",
}  # fmt: skip
"""``CallDisposition`` (free text in Salesforce) → outcome; unknown results are ``other``."""


def _stage(value: str, ctx: Context, is_closed: str = "", is_won: str = "") -> str:
    if is_closed:
        return ("won" if truthy(is_won) else "lost") if truthy(is_closed) else "open"
    return lookup(STAGE, ctx.values.opportunity_stage, value) or "open"


def _lead_status(value: str, ctx: Context, column: str) -> str:
    status = lookup(LEAD_STATUS, ctx.values.lead_status, value)
    if status is None:
        raise Unmappable(column, f"lead status {value!r} has no mapping; add it under crm_values.lead_status "
                                 "in the definitions file")
    return status


def _lead_event(lead_id: str, status: str, label: str, at: str, by: str, account: str,
                source: str = "", person: str = "") -> dict[str, Any]:
    """A status change of the lead, whose person is ``person`` (converted: the contact), else the lead."""
    event: dict[str, Any] = {"type": "lead_status", "leadId": lead_id, "status": status, "changedAt": at,
                             "crmContactId": person or lead_id}
    if status == "rejected":
        event["reason"] = label
    for name, value in (("changedBy", by), ("crmAccountId", account), ("leadSource", source)):
        if value:
            event[name] = value
    return event


def _opportunity(opp_id: str, account: str, action: str, at: str, stage: str, owner: str) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "opportunity", "opportunityId": opp_id, "crmAccountId": account,
                             "action": action, "changedAt": at}
    if stage:
        event["stage"] = stage
    if owner:
        event["ownerId"] = owner
    return event


ACTIONS = {"won": "closed_won", "lost": "closed_lost", "open": "stage_changed"}


# -- Lead, LeadHistory -------------------------------------------------------------------------


def lead(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    """The lead as a person (identify) and its current status (at ``ConvertedDate`` when
    converted, else ``LastModifiedDate``).

    A converted lead is the contact it became (``ConvertedContactId``): its identify and status
    are the contact's person, an ``alias`` makes the lead ``Id`` another id of that person (a task
    or history row still naming the lead resolves to the same person), and a ``group`` puts the
    lead ``Id`` in ``ConvertedAccountId`` (so the live journey counts such rows for the account).
    Converted without ``ConvertedContactId`` exported, the lead stays its own person and leaves
    the email to the contact (two persons with one email would be linked to either)."""
    lead_id, created = r.need("Id"), when(r.need("CreatedDate"), "CreatedDate")
    contact = r.get("ConvertedContactId")
    converted = truthy(r.get("IsConverted")) or bool(contact)
    status = _lead_status(r.need("Status"), ctx, "Status")
    changed = r.get("ConvertedDate") if converted and r.get("ConvertedDate") else r.get("LastModifiedDate")
    changed_at = max(created, when(changed, "LastModifiedDate")) if changed else created
    person = contact or lead_id
    version = r.get("LastModifiedDate") or created
    traits = {"firstName": r.get("FirstName"), "lastName": r.get("LastName"), "title": r.get("Title"),
              "company": r.get("Company"), "email": "" if converted and not contact else r.get("Email")}
    account = r.get("ConvertedAccountId") if converted else ""
    events: list[dict[str, Any]] = [{"type": "identify", "messageId": f"{SOURCE}:Lead:{lead_id}:{version}",
                                     "userId": person, "timestamp": created,
                                     "traits": {k: v for k, v in traits.items() if v}}]
    if contact:
        events.append({"type": "alias", "messageId": f"{SOURCE}:Lead:{lead_id}:converted:{contact}",
                       "previousId": lead_id, "userId": contact, "timestamp": changed_at})
        if account:
            events.append({"type": "group", "messageId": f"{SOURCE}:Lead:{lead_id}:group:{account}",
                           "userId": lead_id, "groupId": account, "timestamp": created})
    return [*events, _lead_event(lead_id, status, r.get("Status"), changed_at, r.get("OwnerId"), account,
                                 r.get("LeadSource"), person)]


def lead_history(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    """``Field = Status`` rows → a status change; ``created`` → new; ``leadConverted`` → sql."""
    field = r.need("Field")
    if field.lower() == "status":
        label = r.need("NewValue")
        status = _lead_status(label, ctx, "NewValue")
    elif field.lower() == "created":
        label, status = "created", "new"
    elif field.lower() == "leadconverted":
        label, status = "converted", "sql"
    else:
        return []
    # converted: the contact's person, as the Lead preset maps it (Lead.ConvertedContactId exported)
    return [_lead_event(r.need("LeadId"), status, label, when(r.need("CreatedDate"), "CreatedDate"),
                        r.get("CreatedById"), r.get("Lead.ConvertedAccountId"), person=r.get("Lead.ConvertedContactId"))]


# -- Opportunity, OpportunityHistory, OpportunityFieldHistory ----------------------------------


def opportunity(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    """Created at ``CreatedDate``; then closed won/lost at ``CloseDate`` (from ``IsClosed``/
    ``IsWon`` when exported, else the stage), or the open stage at ``LastModifiedDate``."""
    opp_id, account, owner = r.need("Id"), r.need("AccountId"), r.get("OwnerId")
    created = when(r.need("CreatedDate"), "CreatedDate")
    stage_name = r.get("StageName")
    state = _stage(stage_name, ctx, r.get("IsClosed"), r.get("IsWon"))
    events = [_opportunity(opp_id, account, "created", created, "", owner)]
    if state != "open":
        closed = when(r.get("CloseDate") or r.get("LastModifiedDate") or r.need("CloseDate"), "CloseDate")
        events.append(_opportunity(opp_id, account, ACTIONS[state], max(created, closed), stage_name, owner))
    elif stage_name and r.get("LastModifiedDate"):
        changed = when(r.get("LastModifiedDate"), "LastModifiedDate")
        events.append(_opportunity(opp_id, account, "stage_changed", max(created, changed), stage_name, owner))
    amount(events[-1], r.get("Amount"), r.get("CurrencyIsoCode"), ctx)
    return events


def opportunity_history(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    """One stage snapshot: closed won/lost when the stage says so, else a stage change."""
    stage_name = r.need("StageName")
    event = _opportunity(r.need("OpportunityId"), r.need("Opportunity.AccountId"),
                         ACTIONS[_stage(stage_name, ctx)], when(r.need("CreatedDate"), "CreatedDate"),
                         stage_name, r.get("CreatedById"))
    amount(event, r.get("Amount"), r.get("CurrencyIsoCode"), ctx)
    return [event]


def opportunity_field_history(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    """``Field = StageName`` rows → stage changes; ``created`` → created; other fields skipped."""
    field = r.need("Field").lower()
    if field not in ("stagename", "created"):
        return []
    stage_name = r.need("NewValue") if field == "stagename" else ""
    action = ACTIONS[_stage(stage_name, ctx)] if stage_name else "created"
    return [_opportunity(r.need("OpportunityId"), r.need("Opportunity.AccountId"), action,
                         when(r.need("CreatedDate"), "CreatedDate"), stage_name, r.get("CreatedById"))]


# -- Task (calls, emails), Event (meetings) ----------------------------------------------------


def _who(r: Cells) -> dict[str, str]:
    ids = {}
    if r.get("WhoId"):
        ids["crmContactId"] = r.get("WhoId")
    account = r.get("AccountId") or (r.get("WhatId") if r.get("WhatId").startswith("001") else "")
    if account:
        ids["crmAccountId"] = account
    if not ids:
        raise Unmappable("WhoId", "names no contact or lead, and neither AccountId nor WhatId names an account")
    return ids


def _conversation(r: Cells, ctx: Context, channel: str, started: str) -> dict[str, Any]:
    owner = r.need("OwnerId")
    event: dict[str, Any] = {"type": "conversation", "conversationId": r.need("Id"), "channel": channel,
                             "repId": owner, "repRole": ctx.role(owner), "direction": "outbound",
                             "startedAt": started, "source": SOURCE, **_who(r)}
    if r.get("Subject"):
        event["subject"] = r.get("Subject")[:1024]
    return event


TASK_CHANNELS = {"call": "call", "email": "email", "listemail": "email", "meeting": "meeting"}


def task(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    """A call (``TaskSubtype = Call`` or ``Type = Call``) or an email task → a conversation at
    ``CompletedDateTime``, else ``CreatedDate``; other tasks (to-dos), tasks whose ``Status`` (when
    exported) is not ``Completed`` (planned, not yet happened) and internal calls
    (``CallType = Internal``, rep to rep) are skipped."""
    kind = (r.get("TaskSubtype") if r.get("TaskSubtype").lower() not in ("", "task") else r.get("Type")).lower()
    channel = TASK_CHANNELS.get(kind)
    if channel is None:
        return []
    if r.get("Status") and r.get("Status").lower() != "completed":
        return []
    if channel == "call" and r.get("CallType").lower() == "internal":
        return []
    started = when(r.get("CompletedDateTime") or r.need("CreatedDate"), "CreatedDate")
    event = _conversation(r, ctx, channel, started)
    if channel == "call":
        if r.get("CallType").lower() == "inbound":
            event["direction"] = "inbound"
        if r.get("CallDurationInSeconds"):
            event["durationSeconds"] = r.get("CallDurationInSeconds")
        if r.get("CallDisposition"):
            event["outcome"] = lookup(CALL_RESULT, ctx.values.call_outcome, r.get("CallDisposition")) or "other"
    return [event]


def event(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    """A calendar event → a meeting at ``StartDateTime`` (``ActivityDateTime``, ``CreatedDate``).
    Salesforce records no attendance: a logged past meeting counts as held (``meeting_held``)."""
    start = r.get("StartDateTime") or r.get("ActivityDateTime") or r.need("CreatedDate")
    conversation = _conversation(r, ctx, "meeting", when(start, "StartDateTime"))
    conversation["outcome"] = "meeting_held"
    if r.get("DurationInMinutes").isdigit():
        conversation["durationSeconds"] = int(r.get("DurationInMinutes")) * 60
    elif r.get("StartDateTime") and r.get("EndDateTime"):
        span = datetime.fromisoformat(when(r.get("EndDateTime"), "EndDateTime").replace("Z", "+00:00")) - \
            datetime.fromisoformat(conversation["startedAt"].replace("Z", "+00:00"))
        conversation["durationSeconds"] = max(0, int(span.total_seconds()))
    return [conversation]


# -- Contact, Account --------------------------------------------------------------------------


def contact(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    """A contact as a person (identify: email, name, title) in its account (group, no traits)."""
    contact_id, created = r.need("Id"), when(r.need("CreatedDate"), "CreatedDate")
    version = r.get("LastModifiedDate") or created
    traits = {"email": r.get("Email"), "firstName": r.get("FirstName"), "lastName": r.get("LastName"),
              "title": r.get("Title")}
    events: list[dict[str, Any]] = [{"type": "identify", "messageId": f"{SOURCE}:Contact:{contact_id}:{version}",
                                     "userId": contact_id, "timestamp": created,
                                     "traits": {k: v for k, v in traits.items() if v}}]
    if r.get("AccountId"):
        events.append({"type": "group", "messageId": f"{SOURCE}:Contact:{contact_id}:group:{version}",
                       "userId": contact_id, "groupId": r.get("AccountId"), "timestamp": created})
    return events


def account(r: Cells, ctx: Context) -> list[dict[str, Any]]:
    """An account's traits (name, industry, employees, website) as a group call; its user is the
    account record itself (``userId`` = the account ``Id``), which touches nothing."""
    account_id = r.need("Id")
    created = when(r.need("CreatedDate"), "CreatedDate")
    traits: dict[str, Any] = {"name": r.get("Name"), "industry": r.get("Industry"), "website": r.get("Website"),
                              "type": r.get("Type")}
    if r.get("NumberOfEmployees"):
        traits["employees"] = r.get("NumberOfEmployees")
    return [{"type": "group", "messageId": f"{SOURCE}:Account:{account_id}:{r.get('LastModifiedDate') or created}",
             "userId": account_id, "groupId": account_id, "timestamp": created,
             "traits": {k: v for k, v in traits.items() if v}}]


def _columns(*names: str) -> dict[str, tuple[str, ...]]:
    return {n: () for n in names}


PRESETS = (
    Preset("salesforce-lead", "Lead: identify + current status", _columns(
        "Id", "FirstName", "LastName", "Email", "Title", "Company", "Status", "LeadSource", "OwnerId",
        "CreatedDate", "LastModifiedDate", "IsConverted", "ConvertedDate", "ConvertedAccountId", "ConvertedContactId"),
        ("Id", "Status", "CreatedDate"), lead),
    Preset("salesforce-lead-history", "LeadHistory: status changes", _columns(
        "Id", "LeadId", "Field", "OldValue", "NewValue", "CreatedById", "CreatedDate", "Lead.ConvertedAccountId",
        "Lead.ConvertedContactId"),
        ("LeadId", "Field", "NewValue", "CreatedDate"), lead_history),
    Preset("salesforce-opportunity", "Opportunity: created + current stage or close", _columns(
        "Id", "AccountId", "Name", "StageName", "Amount", "CurrencyIsoCode", "CloseDate", "IsClosed", "IsWon",
        "OwnerId", "CreatedDate", "LastModifiedDate"),
        ("Id", "AccountId", "StageName", "CloseDate", "CreatedDate"), opportunity),
    Preset("salesforce-opportunity-history", "OpportunityHistory: stage snapshots", _columns(
        "Id", "OpportunityId", "Opportunity.AccountId", "StageName", "Amount", "CurrencyIsoCode", "CloseDate",
        "CreatedById", "CreatedDate"),
        ("OpportunityId", "Opportunity.AccountId", "StageName", "CreatedDate"), opportunity_history),
    Preset("salesforce-opportunity-field-history", "OpportunityFieldHistory: StageName changes", _columns(
        "Id", "OpportunityId", "Opportunity.AccountId", "Field", "OldValue", "NewValue", "CreatedById",
        "CreatedDate"),
        ("OpportunityId", "Opportunity.AccountId", "Field", "NewValue", "CreatedDate"), opportunity_field_history),
    Preset("salesforce-task", "Task: calls and emails", _columns(
        "Id", "TaskSubtype", "Type", "Subject", "WhoId", "WhatId", "AccountId", "OwnerId", "CreatedDate",
        "CompletedDateTime", "Status", "CallType", "CallDurationInSeconds", "CallDisposition"),
        ("Id", "WhoId", "OwnerId", "CreatedDate"), task),
    Preset("salesforce-event", "Event: meetings", _columns(
        "Id", "Subject", "WhoId", "WhatId", "AccountId", "OwnerId", "StartDateTime", "EndDateTime",
        "ActivityDateTime", "DurationInMinutes", "CreatedDate"),
        ("Id", "WhoId", "OwnerId", "CreatedDate"), event),
    Preset("salesforce-contact", "Contact: identify + account", _columns(
        "Id", "AccountId", "FirstName", "LastName", "Email", "Title", "OwnerId", "CreatedDate", "LastModifiedDate"),
        ("Id", "AccountId", "Email", "CreatedDate"), contact),
    Preset("salesforce-account", "Account: group traits", _columns(
        "Id", "Name", "Industry", "NumberOfEmployees", "Website", "Type", "OwnerId", "CreatedDate",
        "LastModifiedDate"),
        ("Id", "Name", "CreatedDate"), account),
)
