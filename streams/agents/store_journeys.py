"""Agent (store role): journey updates → ClickHouse ``account_scores`` and ``stage_changes``."""

from __future__ import annotations

import logging

import faust
from pydantic import ValidationError

from schemas.journey import JourneyUpdate
from sinks.clickhouse.rows import SCORE_COLUMNS, STAGE_CHANGE_COLUMNS, journey_rows
from sinks.clickhouse.writer import insert_until_done
from streams import metrics
from streams.agents.batching import offsets_token
from streams.storehandle import StoreHandle

log = logging.getLogger(__name__)


def register(app: faust.App, topics, settings, handle: StoreHandle) -> None:
    @app.agent(topics.journey_updates, name="store-journeys")
    async def store_journeys(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.sink_batch_size, within=settings.sink_flush_seconds):
            scores, changes = [], []
            for event in events:
                try:
                    score, stage_rows = journey_rows(JourneyUpdate.model_validate_json(event.message.value))
                except ValidationError as exc:
                    log.error("unreadable journey update at offset %s skipped: %s", event.message.offset, exc)
                    continue
                scores.append(score)
                changes.extend(stage_rows)
            store = handle.get()
            with metrics.sink_insert("account_scores", len(events), len(scores)):
                await insert_until_done(store, "account_scores", scores, SCORE_COLUMNS,
                                        dedup_token=offsets_token("account_scores", events),
                                        on_retry=metrics.on_retry("account_scores"))
            await insert_until_done(store, "stage_changes", changes, STAGE_CHANGE_COLUMNS,
                                    dedup_token=offsets_token("stage_changes", events),
                                    on_retry=metrics.on_retry("stage_changes"))
