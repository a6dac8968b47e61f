"""Faust wiring per stage: each module registers its agents (and tables) on the app."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

import faust

from schemas.errors import Reason, RecordFailed
from streams import metrics
from streams.agents import dlq
from streams.fence import Fence

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500


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
