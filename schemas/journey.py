"""What the journey stage produces per event: scores, stage, committee, and stage changes."""

from __future__ import annotations

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict


class StageChangeRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    change_id: str
    account_id: str
    from_stage: str
    to_stage: str
    at: AwareDatetime
    rule: str
    definitions_version: str
    event_id: str
    contact_id: str = ""
    source: str = ""
    persona: str = ""


class ContactScore(BaseModel):
    """One contact's own engagement score on the account (decayed like the account's), as of
    ``scored_at``, its latest scoring touch; readers decay it to the time they ask about."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contact_id: str
    persona: str = ""
    title: str = ""
    score: float
    scored_at: AwareDatetime


class JourneyUpdate(BaseModel):
    """The account's journey right after one event (keyed by account on its topic)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: str
    event_id: str
    at: AwareDatetime
    stage: str
    engagement: float
    fit: float
    total: float
    owner: str = ""
    source: str = ""
    committee: dict[str, list[str]] = {}
    contacts: list[ContactScore] = []
    """The contacts the update's events touched, with their scores."""
    definitions_version: str
    stage_changes: list[StageChangeRecord] = []
    retracted_changes: list[str] = []
    """Stage changes (ids) that no longer happened once a late event was placed in order, or
    once the identity graph changed (see ``reason``)."""
    reason: str = ""
    """Why the retractions happened when no late event made them: ``identity merge`` or
    ``identity unmerge`` (the stage changes such a recompute entered carry it in their rule)."""
    version: int = 0
    """Processing time in µs: orders stage-change rows and their retractions."""

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))
