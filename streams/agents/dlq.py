"""Writing a dead letter: original bytes as the value, where/why in headers."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import faust

from schemas.errors import InvalidEvent
from sinks.clickhouse.rows import dead_letter_row
from streams import topics as t
from streams.deadletters import dlq_id, headers, reasons_of, redact_write_keys


async def send(topic: faust.TopicT, key: bytes | None, raw: bytes, source_kind: str, source: str,
               error: InvalidEvent) -> None:
    raw = redact_write_keys(raw)  # the original bytes, but never a write key
    await topic.send(key=key, value=raw, headers=headers(source_kind, source, raw, error))


# -- reading a dead letter back (the store writes it to ClickHouse) ---------------------------


def _header(headers: dict, name: str, default: str = "") -> str:
    value = headers.get(name)
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or default)


def row_of(message: Any) -> tuple:
    headers = dict(message.headers or {})
    raw = message.value or b""
    source = _header(headers, t.DLQ_HEADER_SOURCE, f"{message.topic}/{message.partition}@{message.offset}")
    reasons = reasons_of(headers.get(t.DLQ_HEADER_REASONS))
    try:
        rejected_at = datetime.fromisoformat(_header(headers, t.DLQ_HEADER_REJECTED_AT))
    except ValueError:  # missing or unreadable: when the store read it
        rejected_at = datetime.now(timezone.utc)
    return dead_letter_row(
        _header(headers, t.DLQ_HEADER_ID) or dlq_id(source, raw),
        rejected_at,
        _header(headers, t.DLQ_HEADER_SOURCE_KIND, "kafka"),
        source,
        _header(headers, t.DLQ_HEADER_STAGE, "validate"),
        reasons,
        raw,
    )
