"""What the tracker produces for every accepted event: one normalised timeline entry.

This is the strict side of the contract: produced by our agents, read by the sink and by
anyone who consumes the timeline topic. Unknown fields are rejected.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Side = Literal["digital", "human", "crm"]
"""digital = self-service (web, content, ads, webinars, marketing email);
human = a 1:1 conversation with a rep; crm = a lifecycle record (lead status, opportunity)."""

CHANNELS = frozenset({
    "web", "content", "webinar", "ads", "email",  # self-service touches (email: campaigns)
    "identity",  # identify / group / alias calls
    "call", "meeting", "sales_email", "chat", "social",  # 1:1 conversations
    "crm",  # lead status and opportunity records
})
"""Every timeline channel the tracker emits; the definitions file must say how each counts."""


class TimelineEvent(BaseModel):
    """One entry of a buyer journey, after validation, normalisation and identity resolution."""

    model_config = ConfigDict(extra="forbid")

    event_id: str
    event_type: str
    name: str = ""
    channel: str
    side: Side
    event_time: AwareDatetime
    received_at: AwareDatetime
    anonymous_id: str = ""
    user_id: str = ""
    email: str = ""
    contact_id: str = ""
    """Resolved person key ('' while the device is anonymous)."""
    account_id: str = ""
    """Resolved account key ('' while unknown)."""
    group_id: str = ""
    domain: str = ""
    rep_id: str = ""
    rep_role: str = ""
    source: str = ""
    properties: dict[str, Any] = Field(default_factory=dict)
    person_id: str = ""
    """The person the stream resolved at processing time (informational; timelines resolve
    through identity links at query time)."""
    journey_account_id: str = ""
    """The account the stream resolved at processing time: the key of the journey stage."""
    replay: bool = False
    """True for buffered anonymous events re-sent after identification: already stored,
    only the journey stage counts them."""

    def to_bytes(self) -> bytes:
        """The record's JSON: pydantic's ``model_dump(mode="json")`` bytes, written by orjson from
        the fields as they are (≈ 1 µs instead of ≈ 6: every internal hop writes one); a value
        orjson does not write natively (a set, a Decimal in the properties) takes pydantic's path."""
        try:
            return orjson.dumps(self.__dict__, option=orjson.OPT_UTC_Z)
        except TypeError:
            return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> "TimelineEvent":
        return cls.model_validate_json(raw)


def utc_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)
