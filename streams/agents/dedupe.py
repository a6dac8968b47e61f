"""Agent: the dedupe step (:mod:`streams.steps.dedupe`, keyed by event id) and its sweep.

Ingest sends every valid event here keyed by its id, already serialised for the stage it goes to
next, with headers naming that stage, its key there, and the inbound record the event came from.
So this stage forwards bytes without parsing them (it costs a Kafka hop and a small table write
per event). The rule is :mod:`streams.rules.dedupe`; the table forgets ids after
``JOURNEYS_DEDUPE_DAYS`` (a sweep every hour, over this worker's partitions only).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from aiokafka.partitioner import DefaultPartitioner

from schemas.errors import log_exc_info, loggable
from streams import tables
from streams.agents import _exit_if_refused, stage_agent
from streams.agents.table_io import DirectTable
from streams.rules.dedupe import expired
from streams.steps import Names
from streams.steps.dedupe import Dedupe, now_ms

log = logging.getLogger(__name__)

SWEEP_SECONDS = 3600.0
CHUNK = 1000


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


class MemoryReceipts:
    """A ``memory://`` table as :func:`sweep` needs it: its local entries, and a ``pop`` that also
    writes the tombstone on the key's changelog partition. Faust's own delete needs a current
    event to pick that partition, and the hourly timer has none: it raised on the first expired
    id. The partition is the one the id's receipts were on (ingest keys them by the id's bytes,
    the producer's default partitioner), which every table is co-partitioned with."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self._partitioner = DefaultPartitioner()
        self._partitions = list(range(table.partitions or 1))

    def items(self) -> Any:
        return list(self.table.data.items())  # a copy: pops during the sweep

    def partition_of(self, event_id: str) -> int:
        return int(self._partitioner(event_id.encode(), self._partitions, self._partitions))

    def pop(self, event_id: str, default: Any = None) -> Any:
        value = self.table.data.pop(event_id, default)
        self.table.send_changelog(self.partition_of(event_id), event_id, None, value_serializer="raw")
        return value


async def sweep_partitions(direct: DirectTable, kafka: Any, cutoff_ms: int, partitions: list[int]) -> int:
    """:func:`sweep` over the table's own partitions, through its databases and changelog
    (:class:`DirectTable`): Faust's table delete needs a current event to pick the partition,
    and a timer has none — it raised, every hour, once ids were old enough to go. Yields to the
    agents every ``CHUNK`` ids; how many were forgotten."""
    gone = 0
    for partition in partitions:
        old: list[tuple[int, bytes]] = []
        async for rows in direct.walk(partition, CHUNK):  # ends early if the partition is revoked meanwhile
            old.extend((partition, key) for key, state in rows if expired(state, cutoff_ms))
        for start in range(0, len(old), CHUNK):
            if partition not in direct.store._dbs:  # revoked meanwhile: never reopened here, its next owner sweeps
                break
            await direct.delete(kafka, old[start:start + CHUNK], _exit_if_refused)
            gone += len(old[start:start + CHUNK])
            await asyncio.sleep(0)
    return gone


def register(app: faust.App, topics, settings) -> None:
    fence = app.journeys_fence  # type: ignore[attr-defined]
    receipts = tables.table(
        app, settings, "event-ids",
        help="event id → its first receipt (inbound record, when), kept JOURNEYS_DEDUPE_DAYS.",
    )
    retention_ms = int(settings.dedupe_days * 86_400_000)

    step = Dedupe(Names.with_prefix(settings.topic_prefix))
    stage_agent(app, topics.receipts, step, settings, fence, table=receipts, stage="dedupe")

    @app.timer(interval=SWEEP_SECONDS)
    async def forget_old_ids() -> None:
        """Drop ids first received more than JOURNEYS_DEDUPE_DAYS ago (this worker's partitions)."""
        direct = DirectTable.of(receipts, app.producer)
        if direct is None:  # memory:// (tests, dev): its local entries, a tombstone per id
            await sweep(MemoryReceipts(receipts), now_ms() - retention_ms)
            return
        fence.check()
        try:
            gone = await sweep_partitions(direct, app.producer._producer, now_ms() - retention_ms,
                                          direct.active_partitions())
        except Exception as exc:  # noqa: BLE001 - deletes are idempotent: the next sweep tries again
            log.error("dedupe: the sweep of old event ids failed (%s); it runs again in %.0f s",
                      loggable(exc), SWEEP_SECONDS, exc_info=log_exc_info(exc))
            return
        log.info("dedupe: forgot %d event ids first received over %s days ago", gone, settings.dedupe_days)
