"""A dead letter's identity and headers (pure): the original bytes go as the value, where and why here."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

import orjson

from schemas.errors import InvalidEvent
from streams import topics as t

WRITE_KEY = re.compile(rb'("writeKey"\s*:\s*)"((?:[^"\\]|\\.)*)"')
"""A ``"writeKey": "…"`` member in raw JSON bytes (group 2: the value as written)."""
_CUT_WRITE_KEY = re.compile(rb'("writeKey"\s*:\s*)"(?:[^"\\]|\\.)*\\?\Z')
"""A key value the end of the bytes cuts (a dead letter keeps a large body's first bytes)."""
REDACTED = b'"[redacted]"'


def redact_write_keys(raw: bytes) -> bytes:
    """``raw`` with the value of every ``"writeKey"`` member replaced by ``"[redacted]"`` and
    every other byte as it was: a dead letter keeps no key, whichever way it came in (the
    collector, the inbound topic, ``journeys import``), a value cut off by the end of ``raw``
    included."""
    if b"writeKey" not in raw:
        return raw
    redacted = WRITE_KEY.sub(lambda m: m.group(1) + REDACTED, raw)
    return _CUT_WRITE_KEY.sub(lambda m: m.group(1) + REDACTED, redacted)


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
