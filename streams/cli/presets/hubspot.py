"""HubSpot CRM exports ("Export" on an object's index page): property labels as headers.

HubSpot names export columns by the properties' labels (its knowledge base, "Set up your import
files" / "HubSpot's default deal properties"; the calls API lists the call properties). Labels can
be renamed per account and their capitalisation varies between exports, so columns are matched
ignoring case, and a few aliases are accepted; see docs/ingestion.md for what is confirmed.
"""

from __future__ import annotations

import re
from typing import Any

from streams.cli.presets.common import Cells, Context, Preset, Unmappable, amount, deal_events, first_id, timestamp


def _stage_key(stage: str) -> str:
    return re.sub(r"[^a-z]", "", stage.lower())


def deal(cells: Cells, ctx: Context) -> list[dict[str, Any]]:
    """A deal row → ``created`` plus ``stage_changed`` or ``closed_won``/``closed_lost``.
    Closed stages: HubSpot's internal ``closedwon``/``closedlost`` or the labels Closed Won/Lost."""
    stage = cells.get("Deal Stage")
    closed = {"closedwon": "closed_won", "closedlost": "closed_lost"}.get(_stage_key(stage or ""))
    account = first_id(cells.get(*ALIASES["Associated Company IDs"]))
    if account is None:
        raise Unmappable("Associated Company IDs", "empty: a deal needs its company to join a journey")
    money = {"amount": amount(cells.get("Amount"), "Amount")}
    if money["amount"] is not None:
        money["currency"] = cells.get("Currency") or ctx.currency
    return deal_events(
        deal_id=cells.need("Record ID"), account=account, stage=stage, closed=closed,
        created=timestamp(cells.get("Create Date"), "Create Date"),
        modified=timestamp(cells.get("Last Modified Date"), "Last Modified Date"),
        closed_at=timestamp(cells.get("Close Date"), "Close Date"), money=money, owner=cells.get("Deal owner"))


OUTCOMES = {"connected": "connected", "no answer": "no_answer", "left voicemail": "voicemail",
            "left live message": "voicemail", "busy": "no_answer", "wrong number": "other"}


def _duration_seconds(value: str | None) -> int | None:
    """``Call duration``: HH:MM:SS, or milliseconds (the property's API unit)."""
    if value is None:
        return None
    if ":" in value:
        parts = [int(p) for p in value.split(":") if p.isdigit()]
        if len(parts) != len(value.split(":")):
            raise Unmappable("Call duration", f"{value!r} is not HH:MM:SS")
        seconds = 0
        for part in parts:
            seconds = seconds * 60 + part
        return seconds
    try:
        return round(float(value) / 1000)
    except ValueError:
        raise Unmappable("Call duration", f"{value!r} is not a duration (HH:MM:SS or milliseconds)") from None


def call(cells: Cells, ctx: Context) -> list[dict[str, Any]]:
    """A call row → one ``conversation`` (channel call; the rep is ``Activity assigned to``)."""
    direction = (cells.get("Call direction") or "outbound").lower()
    if direction not in ("inbound", "outbound"):
        raise Unmappable("Call direction", f"{direction!r} is not Inbound or Outbound")
    raw_outcome = cells.get("Call outcome")
    owner = cells.get(*ALIASES["Activity assigned to"])
    if owner is None:
        raise Unmappable("Activity assigned to", "empty: a conversation needs its rep")
    started = timestamp(cells.get("Activity date"), "Activity date")
    if started is None:
        raise Unmappable("Activity date", "empty: no time for the call")
    event: dict[str, Any] = {
        "type": "conversation", "conversationId": cells.need("Record ID"), "channel": "call",
        "repId": owner, "repRole": ctx.role(owner), "direction": direction, "startedAt": started,
        "durationSeconds": _duration_seconds(cells.get("Call duration")),
        "outcome": OUTCOMES.get(raw_outcome.lower(), "other") if raw_outcome else None,
        "subject": cells.get("Call Title"), "crmContactId": first_id(cells.get("Associated Contact IDs")),
        "crmAccountId": first_id(cells.get("Associated Company IDs")), "source": "hubspot",
    }
    return [{k: v for k, v in event.items() if v is not None}]


ALIASES = {"Associated Company IDs": ("Associated Company IDs", "Associated Company IDs (Primary)"),
           "Activity assigned to": ("Activity assigned to", "Call owner", "HubSpot owner")}

PRESETS = (
    Preset("hubspot-deals", "HubSpot", "deals", required=("Record ID", "Deal Stage", "Create Date",
                                                        "Associated Company IDs"),
           optional=("Deal Name", "Amount", "Currency", "Close Date", "Last Modified Date", "Deal owner",
                     "Pipeline"),
           aliases={"Associated Company IDs": ALIASES["Associated Company IDs"]}, map_row=deal),
    Preset("hubspot-calls", "HubSpot", "calls", required=("Record ID", "Activity date", "Activity assigned to"),
           optional=("Call Title", "Call direction", "Call duration", "Call outcome", "Associated Contact IDs",
                     "Associated Company IDs"),
           aliases={"Activity assigned to": ALIASES["Activity assigned to"],
                    "Associated Company IDs": ALIASES["Associated Company IDs"]}, map_row=call),
)
