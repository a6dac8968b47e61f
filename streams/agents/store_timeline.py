"""Agent (store role): timeline topic → batched, idempotent inserts into ClickHouse ``timeline``.

The batch is acked only after the insert succeeded; a failing insert is retried forever, so
consumption pauses (backpressure) and the offsets are never committed for unwritten rows.
"""

from __future__ import annotations

import logging

import faust
from pydantic import ValidationError

from schemas.timeline import TimelineEvent
from sinks.clickhouse.rows import TIMELINE_COLUMNS, timeline_row
from sinks.clickhouse.writer import insert_until_done
from streams import metrics
from streams.agents.batching import offsets_token
from streams.settings import Settings
from streams.storehandle import StoreHandle

log = logging.getLogger(__name__)


def register(app: faust.App, topics, settings: Settings, handle: StoreHandle) -> None:
    @app.agent(topics.timeline, name="store-timeline")
    async def store_timeline(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.sink_batch_size, within=settings.sink_flush_seconds):
            rows = []
            for event in events:
                try:
                    entry = TimelineEvent.from_bytes(event.message.value)
                    if not entry.replay:  # a replayed buffer entry is stored already
                        rows.append(timeline_row(entry))
                except ValidationError as exc:  # our own output: a bug, not bad input
                    log.error("unreadable timeline entry at %s/%s@%s skipped: %s", event.message.topic,
                              event.message.partition, event.message.offset, exc)
            with metrics.sink_insert("timeline", len(events), len(rows)):
                await insert_until_done(handle.get(), "timeline", rows, TIMELINE_COLUMNS,
                                        dedup_token=offsets_token("timeline", events),
                                        on_retry=metrics.on_retry("timeline"))
