"""Validated inbound event → timeline entry (before identity resolution). Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.events import (
    Alias,
    Conversation,
    Group,
    Identify,
    LeadStatusChange,
    OpportunityUpdate,
    Page,
    SegmentCall,
    Track,
)
from schemas.timeline import TimelineEvent
from streams.rules import pii

FREE_MAIL = frozenset(
    {"gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com",
     "icloud.com", "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "gmx.de",
     "web.de", "mail.com", "yandex.ru", "qq.com", "163.com"}
)  # fmt: skip
ROLE_LOCAL_PARTS = frozenset(
    {"info", "sales", "support", "admin", "contact", "hello", "office", "marketing", "noreply",
     "no-reply", "billing", "team", "hr", "jobs"}
)  # fmt: skip


def normalize_email(value: Any) -> str:
    """``jane@acme.com`` (trimmed, lower case), also from ``Jane Doe <jane@acme.com>``."""
    if not isinstance(value, str) or "@" not in value:
        return ""
    return pii.address_of(value) or value.strip().lower()


def company_domain(
    email: str, free_mail: frozenset[str] = FREE_MAIL, role_parts: frozenset[str] = ROLE_LOCAL_PARTS
) -> str:
    """The company domain of an email, or '' for free-mail and role addresses (info@...)."""
    if not email:
        return ""
    local, _, domain = email.rpartition("@")
    if not domain or domain in free_mail or local in role_parts:
        return ""
    return domain


def digital_channel(event: SegmentCall) -> str:
    """Classify a self-service touch: ads, email, webinar, content or web."""
    campaign = event.context.campaign
    medium = (campaign.medium or "").lower() if campaign else ""
    if medium in {"cpc", "ppc", "paid", "paid_social", "display", "ads"}:
        return "ads"
    if medium == "email":
        return "email"
    name = (getattr(event, "event", None) or getattr(event, "name", None) or "").lower()
    if "webinar" in name:
        return "webinar"
    if any(w in name for w in ("download", "whitepaper", "ebook", "content", "case study")):
        return "content"
    return "web"


def _segment(event: SegmentCall) -> dict[str, Any]:
    props: dict[str, Any] = {}
    email = ""
    group_id = ""
    name = ""
    if isinstance(event, Track):
        props, name = dict(event.properties), event.event
        email = normalize_email(props.get("email"))
    elif isinstance(event, Page):
        props, name = dict(event.properties), event.name or event.context.page and event.context.page.path or ""
    elif isinstance(event, Identify):
        # RudderStack's JS SDK puts identify traits in context.traits (Segment: top-level traits)
        traits = event.traits or (event.context.model_extra or {}).get("traits") or {}
        traits = traits if isinstance(traits, dict) else {}
        props, email = dict(traits), normalize_email(traits.get("email"))
    elif isinstance(event, Group):
        props, group_id, name = dict(event.traits), event.groupId, str(event.traits.get("name", ""))
    elif isinstance(event, Alias):
        props = {"previousId": event.previousId}
    if event.context.campaign is not None:
        props.setdefault("utm", event.context.campaign.model_dump(exclude_none=True))
    if event.context.page is not None:
        if event.context.page.url:
            props.setdefault("url", event.context.page.url)
        if event.context.page.path:
            props.setdefault("path", event.context.page.path)
    side = "digital"
    user_id = event.userId or ""
    if user_id.rstrip().endswith(">"):  # ``Jane Doe <jane@acme.com>``: the person is the address
        user_id = pii.address_of(user_id) or user_id
    channel = digital_channel(event)
    if isinstance(event, (Identify, Group, Alias)):
        channel = "identity"
    return dict(
        name=name or "", channel=channel, side=side, anonymous_id=event.anonymousId or "",
        user_id=user_id, email=email, group_id=group_id, properties=props,
        contact_id=user_id or email, account_id=group_id,
    )  # fmt: skip


CONVERSATION_CHANNELS = {"call": "call", "meeting": "meeting", "email": "sales_email", "chat": "chat",
                         "social": "social"}
"""A conversation's channel → its timeline channel. A conversation is a 1:1 touch whatever its
medium: a rep's email is ``sales_email`` (human, sales), not the marketing ``email`` channel that
campaign traffic (``utm_medium=email``) takes — otherwise an SDR's follow-up email counted as
digital marketing: it did not stop the missed-handoff alert, counted as a digital touch in bounce
detection and gave its attribution credit to marketing."""


def _crm(event: Conversation | LeadStatusChange | OpportunityUpdate) -> dict[str, Any]:
    if isinstance(event, Conversation):
        email = event.contactEmails[0] if event.contactEmails else ""
        return dict(
            name=f"{event.channel} {event.outcome or ''}".strip(), channel=CONVERSATION_CHANNELS[event.channel],
            side="human",
            email=email, contact_id=event.crmContactId or email, account_id=event.crmAccountId or "",
            rep_id=event.repId, rep_role=event.repRole,
            properties=event.model_dump(mode="json", exclude_none=True, exclude={"type", "messageId"}),
        )  # fmt: skip
    if isinstance(event, LeadStatusChange):
        email = event.email or ""
        return dict(
            name=f"lead {event.status}", channel="crm", side="crm", email=email,
            contact_id=event.crmContactId or email, account_id=event.crmAccountId or "",
            rep_id=event.changedBy or "",
            properties=event.model_dump(mode="json", exclude_none=True, exclude={"type", "messageId"}),
        )  # fmt: skip
    return dict(
        name=f"opportunity {event.action}", channel="crm", side="crm",
        account_id=event.crmAccountId, rep_id=event.ownerId or "",
        properties=event.model_dump(mode="json", exclude_none=True, exclude={"type", "messageId"}),
    )  # fmt: skip


def normalize(
    event: Any, *, event_time: datetime, received_at: datetime, source: str, email_key: bytes | None = None
) -> TimelineEvent:
    """Build the timeline entry for one validated event; ids are hints until stitching.

    ``email_key``: pseudonymise every email address with this HMAC key (:mod:`.pii`)."""
    fields = _segment(event) if isinstance(event, SegmentCall) else _crm(event)
    fields["domain"] = company_domain(fields.get("email", ""))  # on the clear address
    if not fields.get("account_id") and fields["domain"]:
        fields["account_id"] = f"domain:{fields['domain']}"
    if email_key:
        for name in ("email", "user_id", "contact_id", "anonymous_id", "group_id", "account_id", "name"):
            fields[name] = pii.scrub(fields.get(name, ""), email_key)
        fields["properties"] = pii.scrub(fields.get("properties", {}), email_key)
    return TimelineEvent(
        event_id=event.messageId, event_type=event.type, event_time=event_time,
        received_at=received_at, source=source, **fields,
    )  # fmt: skip
