"""Agent: dedupe stage (keyed by event id) — the first receipt of each id goes on; re-sends stop.

Ingest sends every valid event here keyed by its id, already serialised for the stage it goes to
next, with headers naming that stage, its key there, and the inbound record the event came from.
So this stage forwards bytes without parsing them (it costs a Kafka hop and a small table write
per event). The rule is :mod:`streams.rules.dedupe`; the table forgets ids after
``JOURNEYS_DEDUPE_DAYS`` (a sweep every hour, over this worker's partitions only).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust

from streams import metrics, tables
from streams.agents import fenced, guarded
from streams.agents.ingest import ROUTES
from streams.headers import RECEIPT_HEADER, ROUTE_HEADER, ROUTE_KEY_HEADER
from streams.rules.dedupe import expired, new_receipt, passes

log = logging.getLogger(__name__)

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


def register(app: faust.App, topics, settings) -> None:
    fence = app.journeys_fence  # type: ignore[attr-defined]
    receipts = tables.table(
        app, settings, "event-ids",
        help="event id → its first receipt (inbound record, when), kept JOURNEYS_DEDUPE_DAYS.",
    )
    retention_ms = int(settings.dedupe_days * 86_400_000)

    @app.agent(topics.receipts, name="dedupe")
    async def dedupe(stream: faust.StreamT) -> None:
        async for event in fenced(stream, fence, "dedupe"):
            async with guarded(event, topics.inbound_dlq, "dedupe"):
                msg = event.message
                headers = dict(msg.headers or {})
                stage = headers.get(ROUTE_HEADER, b"").decode("utf-8", "replace")
                if stage not in ROUTES or msg.key is None:  # only ingest writes here: a bug, say so
                    log.error("receipt without a route at %s[%d]@%d skipped", msg.topic, msg.partition, msg.offset)
                    metrics.EVENTS_OUT.labels("dedupe", "unroutable").inc()
                    continue
                event_id = msg.key.decode("utf-8", "replace")
                ref = headers.get(RECEIPT_HEADER, b"").decode("utf-8", "replace")
                state = receipts.get(event_id)
                if not passes(state, ref):
                    metrics.EVENTS_OUT.labels("dedupe", "resent").inc()
                    continue
                if state is None:
                    receipts[event_id] = new_receipt(ref, _now_ms())  # state first: a redelivery re-sends
                await getattr(topics, stage).send(key=headers.get(ROUTE_KEY_HEADER, b""), value=msg.value)
                metrics.EVENTS_OUT.labels("dedupe", "first").inc()

    @app.timer(interval=SWEEP_SECONDS)
    async def forget_old_ids() -> None:
        """Drop ids first received more than JOURNEYS_DEDUPE_DAYS ago (this worker's partitions)."""
        await sweep(receipts, _now_ms() - retention_ms)
