"""Inbound event contract: Segment Spec calls, sales conversations and CRM lifecycle updates.

Unknown-field policy (documented in README "Event contract"):

* Segment calls are **tolerant**: SDKs add library-specific top-level fields (``_metadata``,
  ``writeKey``, ``version``...). Unknown top-level fields are accepted and dropped;
  the free-form maps ``properties``, ``traits`` and ``context`` keep everything they hold.
* Sales conversations and CRM updates are our own contract and are **strict**: an unknown
  field is rejected, because a typo in a CRM mapping must be noticed, not silently lost.

All times must carry a UTC offset (naive datetimes are rejected), lie between 1970-01-01 and
2200-01-01 (UTC), and are normalised to UTC.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

MAX_EVENT_BYTES = 32 * 1024
"""Largest accepted single event (Segment's own per-call limit)."""
MAX_BATCH_BYTES = 500 * 1024
"""Largest accepted ``/v1/batch`` request body (Segment's own limit)."""
MAX_DEPTH = 32
"""Deepest accepted nesting of one event (the event object is depth 1). Deeper input is refused
at the edge: pydantic's JSON parser stops at ~200 levels and orjson's writer at 254, so a deep
event accepted here would fail a later stage."""
MAX_BATCH_ITEMS = 500
"""Most calls in one ``/v1/batch`` or ``/v1/crm`` batch."""
MAX_EXPANDED_BYTES = 4 * 1024 * 1024
"""Most bytes the events and dead letters of one request may add up to: a batch's ``context``
is copied into each of its items, so a 500 KiB request could otherwise become hundreds of MB."""


EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)
"""Accepted event-time range. Outside it ``astimezone`` and the skew arithmetic can overflow
(an ``OverflowError`` would escape validation and crash the ingest agent)."""


def _to_utc(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)")
    return value.astimezone(timezone.utc)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]
ShortText = Annotated[str, StringConstraints(max_length=1024)]
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        max_length=320,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
    ),
]
FreeMap = dict[str, Any]


def _blank_is_absent(value: str | None) -> str | None:
    return value or None


UserId = Annotated[Id | Literal[""] | None, AfterValidator(_blank_is_absent)]
"""An optional ``userId``; ``""`` means none (RudderStack's JS SDK sends ``"userId": ""`` until
``identify``) and is read as absent."""


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Campaign(BaseModel):
    """UTM parameters (``context.campaign``)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: ShortText | None = None
    source: ShortText | None = None
    medium: ShortText | None = None
    term: ShortText | None = None
    content: ShortText | None = None


class PageContext(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    path: ShortText | None = None
    referrer: ShortText | None = None
    search: ShortText | None = None
    title: ShortText | None = None
    url: ShortText | None = None


class Context(BaseModel):
    """Segment ``context``: page, campaign, ip, userAgent; anything else is kept."""

    model_config = ConfigDict(extra="allow", frozen=True)
    page: PageContext | None = None
    campaign: Campaign | None = None
    ip: ShortText | None = None
    userAgent: ShortText | None = None


class SegmentCall(_Tolerant):
    """Fields common to every Segment Spec call."""

    messageId: Id
    anonymousId: Id | None = None
    userId: UserId = None
    timestamp: UtcDatetime | None = None
    originalTimestamp: UtcDatetime | None = None
    sentAt: UtcDatetime | None = None
    receivedAt: UtcDatetime | None = None
    context: Context = Field(default_factory=Context)

    @model_validator(mode="after")
    def _needs_an_identity(self) -> "SegmentCall":
        if not self.anonymousId and not self.userId:
            raise ValueError("either anonymousId or userId is required")
        return self

    @property
    def client_timestamp(self) -> datetime | None:
        """The time the client says the event happened."""
        return self.timestamp or self.originalTimestamp


class Track(SegmentCall):
    type: Literal["track"]
    event: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    properties: FreeMap = Field(default_factory=dict)


class Page(SegmentCall):
    type: Literal["page"]
    name: ShortText | None = None
    category: ShortText | None = None
    properties: FreeMap = Field(default_factory=dict)


class Identify(SegmentCall):
    type: Literal["identify"]
    traits: FreeMap = Field(default_factory=dict)


class Group(SegmentCall):
    type: Literal["group"]
    groupId: Id
    traits: FreeMap = Field(default_factory=dict)


class Alias(SegmentCall):
    type: Literal["alias"]
    previousId: Id
    userId: Id  # required for alias


DERIVED_PREFIX = "derived-"
"""Prefix of the message ids the tracker derives for CRM records sent without one."""


def _derived_id(*parts: object) -> str:
    """Deterministic message id for sources that have a natural key but no messageId."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f"{DERIVED_PREFIX}{digest}"


def derived_id(event: CrmEvent, scope: str | None = None) -> str:
    """The id of a CRM record sent without ``messageId``, from its natural key.

    Without ``scope`` it is the id the record gets when it is validated (the same since the
    first release, so a re-sent record keeps its id). With ``scope`` (the collector passes the
    write key's source name) the id is namespaced by it: the same natural key posted under
    another source gets another id, so it cannot take the place of the real record in the
    first-receipt-wins deduplication.
    """
    parts = event.natural_key()
    if scope is None:
        return _derived_id(*parts)
    scoped = json.dumps(["source", scope, *(str(p) for p in parts)], ensure_ascii=False)
    return f"{DERIVED_PREFIX}{hashlib.sha256(scoped.encode()).hexdigest()[:32]}"


RepRole = Literal["SDR", "BDR", "AE", "CSM", "SE", "AM", "other"]


ConversationOutcome = Literal[
    "connected", "no_answer", "voicemail", "meeting_booked", "meeting_held", "replied", "no_show", "disqualified",
    "other",
]


class Conversation(_Strict):
    """A 1:1 sales conversation: call, meeting, email, chat or social touch."""

    type: Literal["conversation"]
    messageId: Id | None = None
    conversationId: Id
    channel: Literal["call", "meeting", "email", "chat", "social"]
    repId: Id
    repRole: RepRole
    direction: Literal["inbound", "outbound"]
    startedAt: UtcDatetime
    durationSeconds: Annotated[int, Field(ge=0, le=7 * 24 * 3600)] | None = None
    outcome: ConversationOutcome | None = None
    subject: ShortText | None = None
    contactEmails: Annotated[list[Email], Field(max_length=50)] = Field(default_factory=list)
    crmContactId: Id | None = None
    crmAccountId: Id | None = None
    source: Id | None = None

    @model_validator(mode="after")
    def _ids(self) -> "Conversation":
        if not (self.contactEmails or self.crmContactId or self.crmAccountId):
            raise ValueError("one of contactEmails, crmContactId or crmAccountId is required")
        if self.messageId is None:
            object.__setattr__(self, "messageId", _derived_id(*self.natural_key()))
        return self

    def natural_key(self) -> tuple[object, ...]:
        """What identifies the record when it has no ``messageId`` (:func:`derived_id`)."""
        return ("conversation", self.conversationId)


LeadStatus = Literal["new", "mql", "accepted", "rejected", "sql", "recycled", "disqualified"]


class LeadStatusChange(_Strict):
    """CRM lead status change: accepted or rejected by sales (with the reason), etc."""

    type: Literal["lead_status"]
    messageId: Id | None = None
    leadId: Id
    status: LeadStatus
    reason: ShortText | None = None
    changedAt: UtcDatetime
    changedBy: Id | None = None
    email: Email | None = None
    crmContactId: Id | None = None
    crmAccountId: Id | None = None
    leadSource: Id | None = None

    @model_validator(mode="after")
    def _ids(self) -> "LeadStatusChange":
        if self.status == "rejected" and not self.reason:
            raise ValueError("a rejected lead needs a reason")
        if self.messageId is None:
            object.__setattr__(self, "messageId", _derived_id(*self.natural_key()))
        return self

    def natural_key(self) -> tuple[object, ...]:
        """What identifies the record when it has no ``messageId`` (:func:`derived_id`)."""
        return ("lead_status", self.leadId, self.status, self.changedAt.isoformat())


class OpportunityUpdate(_Strict):
    """CRM opportunity created / stage changed / closed won or lost."""

    type: Literal["opportunity"]
    messageId: Id | None = None
    opportunityId: Id
    crmAccountId: Id
    action: Literal["created", "stage_changed", "closed_won", "closed_lost"]
    stage: ShortText | None = None
    amount: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)] | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    changedAt: UtcDatetime
    ownerId: Id | None = None
    reason: ShortText | None = None

    @model_validator(mode="after")
    def _ids(self) -> "OpportunityUpdate":
        if self.amount is not None and self.currency is None:
            raise ValueError("amount needs a currency")
        if self.messageId is None:
            object.__setattr__(self, "messageId", _derived_id(*self.natural_key()))
        return self

    def natural_key(self) -> tuple[object, ...]:
        """What identifies the record when it has no ``messageId`` (:func:`derived_id`)."""
        return ("opportunity", self.opportunityId, self.action, self.stage, self.changedAt.isoformat())


SegmentEvent = Union[Track, Page, Identify, Group, Alias]
CrmEvent = Union[Conversation, LeadStatusChange, OpportunityUpdate]
InboundEvent = Annotated[
    Union[Track, Page, Identify, Group, Alias, Conversation, LeadStatusChange, OpportunityUpdate],
    Field(discriminator="type"),
]
EVENT_TYPES = ("track", "page", "identify", "group", "alias", "conversation", "lead_status", "opportunity")
