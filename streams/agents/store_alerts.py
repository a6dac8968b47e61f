"""Agent (store role): alerts → ClickHouse ``alerts`` (one row per alert id)."""

from __future__ import annotations

import logging

import faust
from pydantic import ValidationError

from schemas.alerts import AlertRecord
from sinks.clickhouse.rows import ALERT_COLUMNS, alert_row
from sinks.clickhouse.writer import insert_until_done
from streams import metrics
from streams.agents.batching import offsets_token
from streams.storehandle import StoreHandle

log = logging.getLogger(__name__)


def register(app: faust.App, topics, settings, handle: StoreHandle) -> None:
    @app.agent(topics.alerts, name="store-alerts")
    async def store_alerts(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.sink_batch_size, within=settings.sink_flush_seconds):
            rows = []
            for event in events:
                try:
                    rows.append(alert_row(AlertRecord.model_validate_json(event.message.value)))
                except ValidationError as exc:
                    log.error("unreadable alert at offset %s skipped: %s", event.message.offset, exc)
            with metrics.sink_insert("alerts", len(events), len(rows)):
                await insert_until_done(handle.get(), "alerts", rows, ALERT_COLUMNS,
                                        dedup_token=offsets_token("alerts", events),
                                        on_retry=metrics.on_retry("alerts"))
