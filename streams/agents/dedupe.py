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
from streams.agents import batches, crash_on_error, each_guarded
from streams.agents.batching import BatchTable, Outbox
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

    names = {stage: getattr(topics, stage).get_topic_name() for stage in ROUTES}
    dead = topics.inbound_dlq.get_topic_name()

    def one(table: BatchTable, event: faust.EventT, box: Outbox) -> None:
        msg = event.message
        headers = dict(msg.headers or {})
        stage = headers.get(ROUTE_HEADER, b"").decode("utf-8", "replace")
        if stage not in ROUTES or msg.key is None:  # only ingest writes here: a bug, say so
            log.error("receipt without a route at %s[%d]@%d skipped", msg.topic, msg.partition, msg.offset)
            metrics.EVENTS_OUT.labels("dedupe", "unroutable").inc()
            return
        event_id = msg.key.decode("utf-8", "replace")
        ref = headers.get(RECEIPT_HEADER, b"").decode("utf-8", "replace")
        state = table.get(event_id)
        if not passes(state, ref):
            metrics.EVENTS_OUT.labels("dedupe", "resent").inc()
            return
        if state is None:
            table.put(event_id, new_receipt(ref, _now_ms()), event)  # written with the batch's sends: a redelivery re-sends
        box.add(names[stage], headers.get(ROUTE_KEY_HEADER, b""), msg.value)
        metrics.EVENTS_OUT.labels("dedupe", "first").inc()

    @app.agent(topics.receipts, name="dedupe")
    async def dedupe(stream: faust.StreamT) -> None:
        async for events in batches(stream, fence, settings, "dedupe"):
            async with crash_on_error("dedupe"):
                box, table = Outbox(), BatchTable(receipts)
                groups: dict[str, list[tuple[faust.EventT]]] = {}
                for event in events:
                    key = event.message.key.decode("utf-8", "replace") if event.message.key else ""
                    groups.setdefault(key, []).append((event,))
                each_guarded(box, dead, "dedupe", groups,
                             lambda _, items, out: [one(table, item[0], out) for item in items], table)
                fence.check()
                table.flush()
                await box.flush(app)

    @app.timer(interval=SWEEP_SECONDS)
    async def forget_old_ids() -> None:
        """Drop ids first received more than JOURNEYS_DEDUPE_DAYS ago (this worker's partitions)."""
        await sweep(receipts, _now_ms() - retention_ms)
