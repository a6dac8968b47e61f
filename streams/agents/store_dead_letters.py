"""Agent (store role): dead-letter topic → ClickHouse ``dead_letters`` (analysts can query it)."""

from __future__ import annotations

from datetime import datetime, timezone

import faust
import orjson

from sinks.clickhouse.rows import DEAD_LETTER_COLUMNS, dead_letter_row
from sinks.clickhouse.writer import insert_until_done
from streams import metrics
from streams import topics as t
from streams.agents.batching import offsets_token
from streams.agents.dlq import dlq_id
from streams.settings import Settings
from streams.storehandle import StoreHandle


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


def register(app: faust.App, topics, settings: Settings, handle: StoreHandle) -> None:
    @app.agent(topics.inbound_dlq, name="store-dead-letters")
    async def store_dead_letters(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.sink_batch_size, within=settings.sink_flush_seconds):
            rows = [row_of(e.message) for e in events]
            with metrics.sink_insert("dead_letters", len(events), len(rows)):
                await insert_until_done(handle.get(), "dead_letters", rows, DEAD_LETTER_COLUMNS,
                                        dedup_token=offsets_token("dead_letters", events),
                                        on_retry=metrics.on_retry("dead_letters"))
            metrics.dead_letters(rows)
