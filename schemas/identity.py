"""Identity links and manual overrides: what the identity stage tells the store (strict)."""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict

LinkKind = Literal["device", "person_account", "person_alias", "account_merge"]


class IdentityLink(BaseModel):
    """Every interval of one identifier's links, replacing any earlier version of the row.

    device: anonymousId → persons; person_account: person → accounts (time-bounded: job
    changes); person_alias: another id of the same person → the person key;
    account_merge: a domain-derived account → the CRM (else group) account it belongs to.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: LinkKind
    src: str
    dsts: tuple[str, ...]
    valid_from_ms: tuple[int, ...]
    valid_to_ms: tuple[int, ...]
    rules: tuple[str, ...]
    version: int = 0
    """Processing time in ms: the newest version of (kind, src) wins."""

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


class IdentityOverride(BaseModel):
    """A person's decision: undo (or force) one link, with who and why. Applied at query time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["unmerge", "merge"]
    kind: LinkKind
    src: str
    dst: str
    reason: str
    by: str
    at: AwareDatetime

    @property
    def override_id(self) -> str:
        return f"{self.kind}|{self.src}|{self.dst}"

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))
