"""Faust wiring per stage: each module registers its agents (and tables) on the app."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Sequence

import faust

from schemas.errors import Reason, RecordFailed
from streams import metrics
from streams.agents import dlq
from streams.agents.batching import BatchTable, Outbox
from streams.fence import Fence

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500
CRASH_EXIT_CODE = 70
"""A batch stage that cannot go on exits the worker with this code (EX_SOFTWARE)."""


async def fenced(stream: faust.StreamT, fence: Fence, stage: str | None = None) -> AsyncIterator[faust.EventT]:
    """The stream's events, each checked against the fence before the agent touches it (a worker
    frozen past its session exits here, before a stale write) and counted in
    ``journeys_events_in_total{stage}`` when ``stage`` is given. Acks are Faust's as usual: an
    event is acked when the agent asks for the next one."""
    async for event in stream.events():
        fence.check()
        if stage is not None:
            metrics.EVENTS_IN.labels(stage).inc()
        yield event


@asynccontextmanager
async def guarded(event: faust.EventT, dead_letters: faust.TopicT, stage: str) -> AsyncIterator[None]:
    """The one guard around an agent's handling of one record::

        async for event in fenced(stream, fence, "stage"):
            async with guarded(event, topics.inbound_dlq, "stage"):
                ...

    Any exception while handling the record dead-letters THAT record (its original bytes, where
    it was read, ``stage``, the error as the reason), counts it in
    ``journeys_events_out_total{stage, outcome="dead-lettered"}`` and lets the agent go on. (An
    agent that raises is stopped by Faust, which acks the record: the record would be lost and
    every later one would wait.) The dead letter is awaited before the next record is asked for,
    so it is written before the offset is committed. If the dead letter cannot be written, that
    error propagates: the agent stops rather than lose the record silently. Cancellation
    (``BaseException``) is not caught.
    """
    try:
        yield
    except Exception as exc:  # the guard: dead-lettered and counted below
        msg = event.message
        where = f"{msg.topic}/{msg.partition}@{msg.offset}"
        text = f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS]
        log.exception("%s: record %s dead-lettered: %s", stage, where, text)
        error = RecordFailed([Reason("$", f"{stage} failed on this record: {text}")], stage=stage)
        await dlq.send(dead_letters, msg.key, msg.value if msg.value is not None else b"", "kafka", where, error)
        metrics.EVENTS_OUT.labels(stage, "dead-lettered").inc()


# -- batch stages ---------------------------------------------------------------------------


async def batches(stream: faust.StreamT, fence: Fence, settings: Any,
                  stage: str | None = None) -> AsyncIterator[Sequence[faust.EventT]]:
    """The stream in batches (``JOURNEYS_STREAM_BATCH_SIZE`` records, or what came within
    ``JOURNEYS_STREAM_BATCH_SECONDS``), each checked against the fence and counted in
    ``journeys_events_in_total{stage}``. Faust acks a batch when the next one is asked for —
    and also when the loop body raises (``take_events`` acks in a ``finally``), so the body
    must run under :func:`crash_on_error`."""
    async for events in stream.take_events(settings.stream_batch_size, within=settings.stream_batch_seconds):
        fence.check()
        if stage is not None:
            metrics.EVENTS_IN.labels(stage).inc(len(events))
        yield events


@asynccontextmanager
async def crash_on_error(stage: str) -> AsyncIterator[None]:
    """Around a batch: an error that escapes the per-record guard (the dead letters cannot be
    written, a bug in the stage itself) stops the whole worker at once, non-zero, before Faust
    acks the batch: its records are redelivered to the restarted worker, never skipped. (An
    agent that raises is only stopped by Faust, silently, and its batch acked.)"""
    try:
        yield
    except Exception:  # noqa: BLE001 - the crash below is the handling
        log.critical("%s: cannot go on; the worker exits (%d) so its batch is redelivered",
                     stage, CRASH_EXIT_CODE, exc_info=True)
        logging.shutdown()
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)


def dead_letter(box: Outbox, dead_letters: str, event: faust.EventT, stage: str, exc: Exception) -> None:
    """The batch form of :func:`guarded`'s handling: the record that made ``stage`` fail goes to
    the dead letters (original bytes, where it was read, the error as the reason) with the
    batch's outputs, which are on the broker before the batch is committed."""
    msg = event.message
    where = f"{msg.topic}/{msg.partition}@{msg.offset}"
    text = f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS]
    log.error("%s: record %s dead-lettered: %s", stage, where, text, exc_info=exc)
    error = RecordFailed([Reason("$", f"{stage} failed on this record: {text}")], stage=stage)
    raw = msg.value if msg.value is not None else b""
    box.add(dead_letters, msg.key, raw, dlq.headers("kafka", where, raw, error))
    metrics.EVENTS_OUT.labels(stage, "dead-lettered").inc()


def each_guarded(box: Outbox, dead_letters: str, stage: str, groups: dict[str, list[Any]],
                 handle: Callable[[str, list[Any], Outbox], None], state: BatchTable) -> None:
    """Run ``handle(key, items, outbox)`` for each key's items of a batch (``items``: tuples
    whose first element is the Faust event; ``state``: the stage's table, as ``handle`` reads
    and writes it). A key whose handling raises is rolled back to its state before the batch
    and handled again one item at a time, so only the item that fails is dead-lettered; the
    outputs of a failed try are discarded."""
    for key, items in groups.items():
        mine = Outbox()
        try:
            handle(key, items, mine)
            box.extend(mine)
            continue
        except Exception:  # noqa: BLE001 - retried one by one below
            state.forget(key)
        for item in items:
            mine = Outbox()
            saved = state.checkpoint(key)
            try:
                handle(key, [item], mine)
                box.extend(mine)
            except Exception as exc:  # noqa: BLE001 - the guard
                state.rollback(key, saved)
                dead_letter(box, dead_letters, item[0], stage, exc)
