"""Faust wiring per stage: each module registers its agents (and tables) on the app."""

from __future__ import annotations

from typing import AsyncIterator

import faust

from streams import metrics
from streams.fence import Fence


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
