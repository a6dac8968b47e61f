"""A dead letter's identity and headers (pure): the original bytes go as the value, where and why here."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import orjson

from schemas.errors import InvalidEvent
from streams import topics as t


def dlq_id(source: str, raw: bytes) -> str:
    """Deterministic: the same rejected input at the same place is one dead letter."""
    return hashlib.sha256(source.encode() + b"\0" + raw).hexdigest()[:32]


def reasons_of(raw: object) -> list[str]:
    """The reasons header of a dead letter, whatever a producer put there: a dead letter is
    stored and replayable, never dropped, for a header it cannot read."""
    if not raw:
        return ["$: no reason recorded"]
    try:
        reasons = orjson.loads(raw)  # type: ignore[arg-type]
    except (orjson.JSONDecodeError, TypeError):
        return [f"$: unreadable reasons header: {bytes(raw)[:200]!r}" if isinstance(raw, bytes) else "$: unreadable reasons header"]
    if isinstance(reasons, list) and all(isinstance(r, str) for r in reasons):
        return reasons
    return [f"$: unreadable reasons header: {str(reasons)[:200]}"]


def headers(source_kind: str, source: str, raw: bytes, error: InvalidEvent) -> dict[str, bytes]:
    return {
        t.DLQ_HEADER_ID: dlq_id(source, raw).encode(),
        t.DLQ_HEADER_SOURCE_KIND: source_kind.encode(),
        t.DLQ_HEADER_SOURCE: source.encode(),
        t.DLQ_HEADER_STAGE: error.stage.encode(),
        t.DLQ_HEADER_REASONS: orjson.dumps([str(r) for r in error.reasons]),
        t.DLQ_HEADER_REJECTED_AT: datetime.now(timezone.utc).isoformat().encode(),
    }
