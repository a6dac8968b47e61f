"""Agents (store role): every output topic → its ClickHouse table(s), through one mechanism.

Each sink agent takes a batch (``take_events``), maps it to rows with a pure mapper, and
awaits :func:`insert_until_done` per table with a dedup token naming the batch's offsets. The
batch is acked only after every insert succeeded; a failing insert is retried forever, so
consumption pauses (backpressure) and offsets are never committed for unwritten rows.

After a timeline, identity-link or override batch is stored, the store re-resolves the events
it can move (``event_resolution``, what every report reads; sinks/clickhouse/resolution.py),
retried the same way and before the ack. A record a sink cannot read is dead-lettered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import faust
import orjson
from pydantic import ValidationError

from schemas.alerts import AlertRecord
from schemas.errors import InvalidEvent, Reason
from schemas.identity import IdentityLink, IdentityOverride
from schemas.journey import JourneyUpdate
from schemas.timeline import TimelineEvent
from sinks.clickhouse import resolution
from sinks.clickhouse import rows as r
from sinks.clickhouse.writer import insert_until_done, until_done
from streams import metrics
from streams.agents import dlq
from streams.agents.batching import offsets_token
from streams.agents.dlq import row_of
from streams.storehandle import StoreHandle

log = logging.getLogger(__name__)

RowsOf = Callable[[faust.types.Message], Iterable[tuple[Any, ...]]]


@dataclass(frozen=True)
class Target:
    """One table a sink agent writes: its columns and the pure mapper message → rows."""

    table: str
    columns: Sequence[str]
    rows_of: RowsOf


def _timeline(message: faust.types.Message) -> list[tuple]:
    entry = TimelineEvent.from_bytes(message.value)
    return [] if entry.replay else [r.timeline_row(entry)]  # a replay is stored already


def _scores(message: faust.types.Message) -> list[tuple]:
    return [r.journey_rows(JourneyUpdate.model_validate_json(message.value))[0]]


def _stage_changes(message: faust.types.Message) -> list[tuple]:
    return r.journey_rows(JourneyUpdate.model_validate_json(message.value))[1]


Resolve = Callable[[Any, list[tuple]], None]
"""What a batch's rows make the store do next, in the same batch: ``(store, rows) -> None``,
blocking and idempotent (re-run after a crash before the ack)."""


async def unreadable(message: Any, table: str, exc: Exception, dead_letters: faust.TopicT | None) -> None:
    """A record the store cannot map to rows (our own output, so a bug): dead-lettered with the
    reason, its original bytes and where it was read — awaited before the batch is acked — so it
    is never skipped silently. Only the dead-letter sink itself has nowhere to send it: it logs."""
    where = f"{message.topic}/{message.partition}@{message.offset}"
    reason = f"the store cannot read this record for {table}: {type(exc).__name__}: {exc}"[:500]
    metrics.EVENTS_OUT.labels("store", "dead-lettered").inc()
    if dead_letters is None:
        log.error("%s (%s): not stored", reason, where)
        return
    error = InvalidEvent([Reason("$", reason)], stage="store")
    await dlq.send(dead_letters, message.key, message.value if message.value is not None else b"", "kafka",
                   where, error)


def sink_agent(app: faust.App, topic: faust.TopicT, name: str, targets: Sequence[Target], settings: Any,
               handle: StoreHandle, after: Callable[[list[tuple]], None] | None = None,
               then: Resolve | None = None, dead_letters: faust.TopicT | None = None) -> None:
    """Register an agent that writes every message of ``topic`` to ``targets``; ``then`` runs on
    the rows of the first target once they are stored, retried like the inserts, before the ack."""

    @app.agent(topic, name=name)
    async def sink(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.sink_batch_size, within=settings.sink_flush_seconds):
            for target in targets:
                rows: list[tuple] = []
                for event in events:
                    try:
                        rows.extend(target.rows_of(event.message))
                    except (ValidationError, orjson.JSONDecodeError, ValueError) as exc:  # our own output: a bug
                        await unreadable(event.message, target.table, exc, dead_letters)
                with metrics.sink_insert(target.table, len(events), len(rows)):
                    await insert_until_done(handle.get(), target.table, rows, target.columns,
                                            dedup_token=offsets_token(target.table, events),
                                            on_retry=metrics.on_retry(target.table))
                if after is not None:
                    after(rows)
                if then is not None and target is targets[0] and rows:
                    await until_done(lambda: then(handle.get(), rows), f"{name}: resolve events",
                                     on_retry=metrics.on_retry("event_resolution"))


def register(app: faust.App, topics: Any, settings: Any, handle: StoreHandle) -> None:
    def sink(topic: faust.TopicT, name: str, *targets: Target, after: Callable | None = None,
             then: Resolve | None = None) -> None:
        # what a sink cannot read goes to the dead letters — except from the dead-letter sink itself
        dead_letters = None if topic is topics.inbound_dlq else topics.inbound_dlq
        sink_agent(app, topic, name, targets, settings, handle, after, then, dead_letters)

    sink(topics.timeline, "store-timeline", Target("timeline", r.TIMELINE_COLUMNS, _timeline),
         then=resolution.after_timeline_rows)
    sink(topics.inbound_dlq, "store-dead-letters",
         Target("dead_letters", r.DEAD_LETTER_COLUMNS, lambda m: [row_of(m)]), after=metrics.dead_letters)
    sink(topics.identity_links, "store-identity-links",
         Target("identity_links", r.LINK_COLUMNS, lambda m: [r.link_row(IdentityLink.model_validate_json(m.value))]),
         then=resolution.after_link_rows)
    sink(topics.identity_overrides, "store-identity-overrides",
         Target("identity_overrides", r.OVERRIDE_COLUMNS,
                lambda m: [r.override_row(IdentityOverride.model_validate_json(m.value))]),
         then=resolution.after_override_rows)
    sink(topics.journey_updates, "store-journeys", Target("account_scores", r.SCORE_COLUMNS, _scores),
         Target("stage_changes", r.STAGE_CHANGE_COLUMNS, _stage_changes))
    sink(topics.alerts, "store-alerts",
         Target("alerts", r.ALERT_COLUMNS, lambda m: [r.alert_row(AlertRecord.model_validate_json(m.value))]))
