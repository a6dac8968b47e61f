"""Agent: raw inbound bytes → validated, normalised timeline entries; rejects → dead letters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import faust

from schemas.decode import decode
from schemas.errors import InvalidEvent
from streams.agents import dlq
from streams.rules.normalize import normalize
from streams.settings import Settings


def register(app: faust.App, topics, settings: Settings) -> None:
    max_future = timedelta(seconds=settings.max_future_seconds)

    @app.agent(topics.inbound, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            received = datetime.fromtimestamp(msg.timestamp, timezone.utc)
            source = f"{msg.topic}/{msg.partition}@{msg.offset}"
            try:
                inbound, when = decode(msg.value, received_at=received, max_future=max_future)
            except InvalidEvent as exc:
                await dlq.send(topics.inbound_dlq, msg.key, msg.value, "kafka", source, exc)
                continue
            received = getattr(inbound, "receivedAt", None) or received
            entry = normalize(inbound, event_time=when, received_at=received, source="kafka")
            key = entry.account_id or entry.contact_id or entry.anonymous_id
            await topics.timeline.send(key=key.encode(), value=entry.to_bytes())
