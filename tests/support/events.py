"""Build inbound events for tests (as the bytes an upstream system would send)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import count

import orjson

T0 = datetime(2026, 9, 1, 9, 0, tzinfo=timezone.utc)
_ids = count(1)


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def _seg(kind: str, hours: float, **fields) -> dict:
    return {"type": kind, "messageId": fields.pop("mid", None) or f"{kind}-{next(_ids):06d}",
            "timestamp": at(hours), **fields}


def page(hours: float, anon: str | None = None, user: str | None = None, path: str = "/", **kw) -> dict:
    ids = {k: v for k, v in (("anonymousId", anon), ("userId", user)) if v}
    return _seg("page", hours, name=path, context={"page": {"path": path}}, **ids, **kw)


def identify(hours: float, anon: str | None, user: str, email: str | None = None, **kw) -> dict:
    ids = {"anonymousId": anon} if anon else {}
    return _seg("identify", hours, userId=user, traits={"email": email} if email else {}, **ids, **kw)


def group(hours: float, user: str, group_id: str, **kw) -> dict:
    return _seg("group", hours, userId=user, groupId=group_id, **kw)


def call(hours: float, email: str, account: str | None = None, rep: str = "rep-1", **kw) -> dict:
    body = {"type": "conversation", "conversationId": f"call-{next(_ids):06d}", "channel": "call",
            "repId": rep, "repRole": "SDR", "direction": "outbound", "startedAt": at(hours),
            "contactEmails": [email], **kw}
    if account:
        body["crmAccountId"] = account
    return body


def encode(events: list[dict]) -> list[bytes]:
    return [orjson.dumps(e) for e in events]


def ids(events: list[dict]) -> set[str]:
    return {e.get("messageId") for e in events if e.get("messageId")}
