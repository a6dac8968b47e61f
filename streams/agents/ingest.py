"""Agent: raw inbound bytes → validated, normalised timeline entries; rejects → dead letters.

Valid entries go to the dedupe stage keyed by event id (:mod:`streams.agents.dedupe`), with the
stage they go to next (:func:`route_of`) in headers; it passes each id's first receipt on.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import faust

from pydantic import ValidationError

from schemas.decode import decode, reasons_from
from schemas.errors import InvalidEvent
from schemas.timeline import TimelineEvent
from streams import metrics
from streams.agents import batches, crash_on_error, dead_letter, dlq
from streams.agents.batching import Outbox
from streams.headers import RECEIPT_HEADER, ROUTE_HEADER, ROUTE_KEY_HEADER, SOURCE_HEADER
from streams.rules.identity import IdentityConfig, person_key
from streams.rules.normalize import normalize
from streams.settings import Settings


ROUTES = ("events", "persons", "timeline")
"""The stages an entry can go to after the dedupe stage (attributes of ``streams.app.Topics``)."""


def route_of(entry: TimelineEvent, cfg: IdentityConfig) -> tuple[str, bytes, bytes]:
    """Where an entry goes after the dedupe stage: (stage topic, key, value bytes for that stage).

    The device stage while an anonymousId is known, else the person stage, else straight to the
    timeline. Decided here, so the dedupe stage forwards the bytes as they are, without parsing.
    """
    if entry.anonymous_id and entry.anonymous_id.lower() not in cfg.blocked_values:
        return "events", entry.anonymous_id.encode(), entry.to_bytes()
    person = person_key(entry, cfg)
    if person:
        return "persons", person.encode(), entry.model_copy(update={"person_id": person}).to_bytes()
    direct = entry.model_copy(update={"journey_account_id": entry.account_id})
    return "timeline", (entry.account_id or "unresolved").encode(), direct.to_bytes()


def register(app: faust.App, topics, settings: Settings) -> None:
    fence = app.journeys_fence  # type: ignore[attr-defined]
    cfg = settings.identity.config(settings.pii.key())
    dedupe = settings.dedupe_days > 0
    max_future = timedelta(seconds=settings.max_future_seconds)
    max_depth = settings.max_event_depth
    email_key = settings.pii.key()

    names = {stage: getattr(topics, stage).get_topic_name() for stage in ROUTES}
    receipts, dead = topics.receipts.get_topic_name(), topics.inbound_dlq.get_topic_name()

    def one(event: faust.EventT, box: Outbox) -> None:
        msg = event.message
        received = datetime.fromtimestamp(msg.timestamp, timezone.utc)
        source = f"{msg.topic}/{msg.partition}@{msg.offset}"
        raw = msg.value if msg.value is not None else b""  # a tombstone is an empty, invalid record
        try:
            inbound, when = decode(raw, received_at=received, max_future=max_future, max_depth=max_depth)
        except InvalidEvent as exc:
            box.add(dead, msg.key, raw, dlq.headers("kafka", source, raw, exc))
            metrics.EVENTS_OUT.labels("ingest", "rejected").inc()
            return
        received = getattr(inbound, "receivedAt", None) or received
        source_header = dict(msg.headers or {}).get(SOURCE_HEADER)
        source_name = source_header.decode("utf-8", "replace") if isinstance(source_header, bytes) else "kafka"
        try:
            entry = normalize(inbound, event_time=when, received_at=received, source=source_name,
                              email_key=email_key)
        except ValidationError as exc:  # valid input we cannot represent: dead-letter, never drop
            box.add(dead, msg.key, raw, dlq.headers("kafka", source, raw,
                                                    InvalidEvent(reasons_from(exc, tagged=False), stage="normalize")))
            metrics.EVENTS_OUT.labels("ingest", "rejected").inc()
            return
        stage, key, value = route_of(entry, cfg)
        if not dedupe:  # JOURNEYS_DEDUPE_DAYS=0: straight on, re-sends included
            box.add(names[stage], key, value)
        else:
            box.add(receipts, entry.event_id.encode(), value, {
                RECEIPT_HEADER: source.encode(), ROUTE_HEADER: stage.encode(), ROUTE_KEY_HEADER: key})
        metrics.EVENTS_OUT.labels("ingest", "accepted").inc()

    @app.agent(topics.inbound, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        async for events in batches(stream, fence, settings, "ingest"):
            async with crash_on_error("ingest"):
                box = Outbox()
                for event in events:
                    mine = Outbox()
                    try:
                        one(event, mine)
                        box.extend(mine)
                    except Exception as exc:  # noqa: BLE001 - the guard
                        dead_letter(box, dead, event, "ingest", exc)
                fence.check()
                await box.flush(app)
