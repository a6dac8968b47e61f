"""Agent (store role): identity links and manual overrides → ClickHouse (newest version wins)."""

from __future__ import annotations

import logging

import faust
from pydantic import ValidationError

from schemas.identity import IdentityLink, IdentityOverride
from sinks.clickhouse.rows import LINK_COLUMNS, OVERRIDE_COLUMNS, link_row, override_row
from sinks.clickhouse.writer import insert_until_done
from streams import metrics
from streams.agents.batching import offsets_token
from streams.storehandle import StoreHandle

log = logging.getLogger(__name__)


def register(app: faust.App, topics, settings, handle: StoreHandle) -> None:
    batch, within = settings.sink_batch_size, settings.sink_flush_seconds

    @app.agent(topics.identity_links, name="store-identity-links")
    async def store_links(stream: faust.StreamT) -> None:
        async for events in stream.take_events(batch, within=within):
            rows = []
            for event in events:
                try:
                    rows.append(link_row(IdentityLink.model_validate_json(event.message.value)))
                except ValidationError as exc:
                    log.error("unreadable identity link at offset %s skipped: %s", event.message.offset, exc)
            with metrics.sink_insert("identity_links", len(events), len(rows)):
                await insert_until_done(handle.get(), "identity_links", rows, LINK_COLUMNS,
                                        dedup_token=offsets_token("identity_links", events),
                                        on_retry=metrics.on_retry("identity_links"))

    @app.agent(topics.identity_overrides, name="store-identity-overrides")
    async def store_overrides(stream: faust.StreamT) -> None:
        async for events in stream.take_events(batch, within=within):
            rows = []
            for event in events:
                try:
                    rows.append(override_row(IdentityOverride.model_validate_json(event.message.value)))
                except ValidationError as exc:
                    log.error("unreadable identity override at offset %s skipped: %s", event.message.offset, exc)
            with metrics.sink_insert("identity_overrides", len(events), len(rows)):
                await insert_until_done(handle.get(), "identity_overrides", rows, OVERRIDE_COLUMNS,
                                        dedup_token=offsets_token("identity_overrides", events),
                                        on_retry=metrics.on_retry("identity_overrides"))
