"""Privacy requests: what ``journeys privacy forget`` asks the store process to do (strict)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

IdentifierKind = Literal["email", "user_id", "anonymous_id"]


def identifier_hash(identifier: str) -> str:
    """SHA-256 hex of an identifier as stored: what the audit keeps instead of the identifier.

    Not reversible, but a known identifier can be hashed and looked up ("was X forgotten?")."""
    return hashlib.sha256(identifier.encode()).hexdigest()


class ForgetRequest(BaseModel):
    """Forget one person: their events, links, scores and dead letters in the store, and their
    state in the stream stages. ``identifier`` is in its *stored* form (an email pseudonymised
    when ``JOURNEYS_PII__EMAIL_HMAC_KEY`` is set, else trimmed and lower-cased), so no clear
    address is written to the request topic when the store holds pseudonyms."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: IdentifierKind
    identifier: str = Field(min_length=1, max_length=512)
    requested_by: str = Field(max_length=256)
    requested_at: AwareDatetime

    @property
    def identifier_hash(self) -> str:
        return identifier_hash(self.identifier)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))
