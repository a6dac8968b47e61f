"""Writing a dead letter: original bytes as the value, where/why in headers."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import faust
import orjson

from schemas.errors import InvalidEvent
from sinks.clickhouse.rows import dead_letter_row
from streams import topics as t


def dlq_id(source: str, raw: bytes) -> str:
    """Deterministic: the same rejected input at the same place is one dead letter."""
    return hashlib.sha256(source.encode() + b"\0" + raw).hexdigest()[:32]


def headers(source_kind: str, source: str, raw: bytes, error: InvalidEvent) -> dict[str, bytes]:
    return {
        t.DLQ_HEADER_ID: dlq_id(source, raw).encode(),
        t.DLQ_HEADER_SOURCE_KIND: source_kind.encode(),
        t.DLQ_HEADER_SOURCE: source.encode(),
        t.DLQ_HEADER_STAGE: error.stage.encode(),
        t.DLQ_HEADER_REASONS: orjson.dumps([str(r) for r in error.reasons]),
        t.DLQ_HEADER_REJECTED_AT: datetime.now(timezone.utc).isoformat().encode(),
    }


async def send(topic: faust.TopicT, key: bytes | None, raw: bytes, source_kind: str, source: str,
               error: InvalidEvent) -> None:
    await topic.send(key=key, value=raw, headers=headers(source_kind, source, raw, error))


# -- reading a dead letter back (the store writes it to ClickHouse) ---------------------------


def _header(headers: dict, name: str, default: str = "") -> str:
    value = headers.get(name)
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or default)


def row_of(message: faust.types.Message) -> tuple:
    headers = dict(message.headers or {})
    raw = message.value or b""
    source = _header(headers, t.DLQ_HEADER_SOURCE, f"{message.topic}/{message.partition}@{message.offset}")
    reasons_raw = headers.get(t.DLQ_HEADER_REASONS)
    reasons = orjson.loads(reasons_raw) if reasons_raw else ["$: no reason recorded"]
    rejected = _header(headers, t.DLQ_HEADER_REJECTED_AT)
    rejected_at = datetime.fromisoformat(rejected) if rejected else datetime.now(timezone.utc)
    return dead_letter_row(
        _header(headers, t.DLQ_HEADER_ID) or dlq_id(source, raw),
        rejected_at,
        _header(headers, t.DLQ_HEADER_SOURCE_KIND, "kafka"),
        source,
        _header(headers, t.DLQ_HEADER_STAGE, "validate"),
        reasons,
        raw,
    )
