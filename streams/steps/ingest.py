"""Step: raw inbound bytes → validated, normalised timeline entries; rejects → dead letters.

Valid entries go to the dedupe stage keyed by event id, with the stage they go to next
(:func:`route_of`) and their key there in headers, so the dedupe stage forwards bytes without
parsing them. With ``JOURNEYS_DEDUPE_DAYS=0`` they go straight to that stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import ValidationError

from schemas.decode import decode, reasons_from
from schemas.errors import InvalidEvent
from schemas.timeline import TimelineEvent
from streams import deadletters, metrics
from streams.headers import RECEIPT_HEADER, ROUTE_HEADER, ROUTE_KEY_HEADER, SOURCE_HEADER
from streams.rules.identity import IdentityConfig, person_key
from streams.rules.normalize import normalize
from streams.steps import Names, Outbox, States, where

ROUTES = ("events", "persons", "timeline")
"""The stages an entry can go to after the dedupe stage (fields of :class:`streams.steps.Names`)."""


def route_of(entry: TimelineEvent, cfg: IdentityConfig) -> tuple[str, bytes, bytes]:
    """Where an entry goes after the dedupe stage: (stage, key, value bytes for that stage).

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


@dataclass
class Ingest:
    names: Names
    cfg: IdentityConfig
    dedupe: bool = True
    max_future: timedelta = timedelta(seconds=300)
    max_depth: int = 32
    email_key: bytes | None = None
    name: str = "ingest"

    def group(self, records: Sequence[Any], out: Outbox) -> dict[str, list[tuple[Any, ...]]]:
        # no state: one group per record, so the guard dead-letters exactly the one that fails
        return {str(i): [(record,)] for i, record in enumerate(records)}

    def handle(self, key: str, items: list[tuple[Any, ...]], states: States, out: Outbox) -> None:
        for (record,) in items:
            self.one(record, out)

    def one(self, record: Any, out: Outbox) -> None:
        received = datetime.fromtimestamp(record.timestamp, timezone.utc)
        source = where(record)
        raw = record.value if record.value is not None else b""  # a tombstone is an empty, invalid record
        try:
            inbound, when = decode(raw, received_at=received, max_future=self.max_future, max_depth=self.max_depth)
        except InvalidEvent as exc:
            kept = deadletters.redact_write_keys(raw)  # the original bytes, but never a write key
            out.add(self.names.inbound_dlq, record.key, kept, deadletters.headers("kafka", source, kept, exc))
            metrics.child(metrics.EVENTS_OUT, "ingest", "rejected").inc()
            return
        received = getattr(inbound, "receivedAt", None) or received
        source_header = dict(record.headers or {}).get(SOURCE_HEADER)
        source_name = source_header.decode("utf-8", "replace") if isinstance(source_header, bytes) else "kafka"
        try:
            entry = normalize(inbound, event_time=when, received_at=received, source=source_name,
                              email_key=self.email_key)
        except ValidationError as exc:  # valid input we cannot represent: dead-letter, never drop
            error = InvalidEvent(reasons_from(exc, tagged=False), stage="normalize")
            kept = deadletters.redact_write_keys(raw)
            out.add(self.names.inbound_dlq, record.key, kept, deadletters.headers("kafka", source, kept, error))
            metrics.child(metrics.EVENTS_OUT, "ingest", "rejected").inc()
            return
        stage, key, value = route_of(entry, self.cfg)
        if not self.dedupe:  # JOURNEYS_DEDUPE_DAYS=0: straight on, re-sends included
            out.add(getattr(self.names, stage), key, value)
        else:
            out.add(self.names.receipts, entry.event_id.encode(), value, {
                RECEIPT_HEADER: source.encode(), ROUTE_HEADER: stage.encode(), ROUTE_KEY_HEADER: key})
        metrics.child(metrics.EVENTS_OUT, "ingest", "accepted").inc()
