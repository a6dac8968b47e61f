"""The recommended Kafka key of an inbound event (pure).

The inbound topic's key only orders related events within a partition; the worker re-keys
by identity and by account itself. Segment calls: ``anonymousId`` (else ``userId``), so one
device's calls stay in order. CRM records: their natural id (``conversationId``, ``leadId``,
``opportunityId``), so the updates of one record stay in order.
"""

from __future__ import annotations

from typing import Any

from schemas.events import Conversation, LeadStatusChange, OpportunityUpdate, SegmentCall


def inbound_key(event: Any) -> str | None:
    """Key for a validated inbound event; None when it has none (never for valid events)."""
    if isinstance(event, SegmentCall):
        return event.anonymousId or event.userId
    if isinstance(event, Conversation):
        return event.conversationId
    if isinstance(event, LeadStatusChange):
        return event.leadId
    if isinstance(event, OpportunityUpdate):
        return event.opportunityId
    return None


def raw_key(obj: Any) -> str | None:
    """Best-effort key of an unvalidated JSON object (for dead letters): the same fields."""
    if not isinstance(obj, dict):
        return None
    for field in ("anonymousId", "userId", "conversationId", "leadId", "opportunityId"):
        value = obj.get(field)
        if isinstance(value, str) and value:
            return value
    return None
