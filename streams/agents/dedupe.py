"""Agent: dedupe stage (keyed by event id) — the first receipt of each id goes on; re-sends stop.

Ingest sends every valid event here keyed by its id, with the inbound record it came from in a
header. The rule is :mod:`streams.rules.dedupe`; the table forgets ids after
``JOURNEYS_DEDUPE_DAYS`` (a sweep every hour, over this worker's partitions only).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust

from schemas.timeline import TimelineEvent
from streams import metrics, tables
from streams.agents.ingest import route
from streams.headers import RECEIPT_HEADER
from streams.rules.dedupe import expired, new_receipt, passes
from streams.rules.identity import IdentityConfig

SWEEP_SECONDS = 3600.0
CHUNK = 1000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def sweep(receipts: Any, cutoff_ms: int) -> int:
    """Forget the ids first received before ``cutoff_ms``; how many. ``receipts``: the table (its
    local partitions) or any mapping. The scan reads every id, so it yields to the agents every
    ``CHUNK`` ids: a worker holding millions of ids keeps consuming while it sweeps."""
    old = []
    for i, (event_id, state) in enumerate(receipts.items()):
        if expired(state, cutoff_ms):
            old.append(event_id)
        if i % CHUNK == CHUNK - 1:
            await asyncio.sleep(0)
    for i, event_id in enumerate(old):
        receipts.pop(event_id, None)
        if i % CHUNK == CHUNK - 1:
            await asyncio.sleep(0)
    return len(old)


def register(app: faust.App, topics, settings, cfg: IdentityConfig) -> None:
    fence = app.journeys_fence  # type: ignore[attr-defined]
    receipts = tables.table(
        app, settings, "event-ids",
        help="event id → its first receipt (inbound record, when), kept JOURNEYS_DEDUPE_DAYS.",
    )
    retention_ms = int(settings.dedupe_days * 86_400_000)

    @app.agent(topics.receipts, name="dedupe")
    async def dedupe(stream: faust.StreamT) -> None:
        async for event in stream.events():
            fence.check()  # frozen past the session: exit before a stale write
            metrics.EVENTS_IN.labels("dedupe").inc()
            msg = event.message
            ref = dict(msg.headers or {}).get(RECEIPT_HEADER, b"").decode("utf-8", "replace")
            entry = TimelineEvent.from_bytes(msg.value)
            state = receipts.get(entry.event_id)
            if not passes(state, ref):
                metrics.EVENTS_OUT.labels("dedupe", "resent").inc()
                continue
            if state is None:
                receipts[entry.event_id] = new_receipt(ref, _now_ms())  # state first: a redelivery re-sends
            await route(topics, entry, cfg)
            metrics.EVENTS_OUT.labels("dedupe", "first").inc()

    @app.timer(interval=SWEEP_SECONDS)
    async def forget_old_ids() -> None:
        """Drop ids first received more than JOURNEYS_DEDUPE_DAYS ago (this worker's partitions)."""
        await sweep(receipts, _now_ms() - retention_ms)
