"""Agent: the journey step (:mod:`streams.steps.journey`, keyed by account), its table and timer.

It reads the timeline topic and the tick topic (co-partitioned, both keyed by account). A
timer sends ticks for accounts whose time-based alert rules are due, so rules that fire
"when nothing happens" run in the partition that owns the account's state.
"""

from __future__ import annotations

import asyncio
import logging
import time

import faust

from schemas.errors import log_exc_info, loggable
from streams import tables
from streams.agents import stage_agent
from streams.agents.table_io import DirectTable
from streams.definitions_source import DefinitionsSource
from streams.rules.alerts import DueIndex
from streams.steps import Names
from streams.steps.journey import Journey, alert_record, due_ms_of

__all__ = ["alert_record", "register"]

log = logging.getLogger(__name__)


async def fill_due_index(direct: DirectTable, index: DueIndex, partitions: list[int], refill: int) -> int:
    """Note in ``index`` the due time of every account in the table's ``partitions``, a chunk at
    a time (:meth:`DirectTable.walk`), each read from the start of its stored bytes
    (:func:`due_ms_of`), the stages run in between. An account the stage writes
    meanwhile keeps the due time the stage noted (:meth:`DueIndex.restore`: the walk reads the
    table as it was when it began). Until the walk reaches an account, a due timer rule of it
    waits (the first tick after finds it). How many accounts have a due time. ``refill``: what
    ``index.refill()`` returned."""
    began, seen = time.perf_counter(), 0
    try:
        for partition in partitions:
            async for rows in direct.walk(partition, decode=False):
                for key, raw in rows:
                    index.restore(direct.store._decode_key(key), due_ms_of(raw))
                seen += len(rows)
    except Exception as exc:  # noqa: BLE001 - a background task: nobody else would see it
        log.error("timer rules: reading the due times stopped after %d accounts (%s); accounts not read yet "
                  "tick again once they are written, or after the next rebalance", seen, loggable(exc),
                  exc_info=log_exc_info(exc))
        return len(index)
    finally:
        index.refilled(refill)
    log.info("timer rules: %d of this worker's %d accounts have a due time (read in %.1f s)", len(index), seen,
             time.perf_counter() - began)
    return len(index)


def register(app: faust.App, topics, settings, definitions: DefinitionsSource) -> None:
    journeys = tables.table(
        app, settings, "journeys",
        help="account → stage, scores, buying committee, recent touches, fired alerts.",
    )
    source = app.topic(topics.timeline.get_topic_name(), topics.journey_ticks.get_topic_name(),
                       key_serializer="raw", value_serializer="raw")
    step = Journey(Names.with_prefix(settings.topic_prefix), definitions.current, public_url=settings.public_url,
                   alert_idle_ms=int(settings.alert_idle_seconds * 1000))
    definitions.subscribe(step.use)  # a new version applies from the next batch on
    stage_agent(app, source, step, settings, app.journeys_fence, table=journeys)  # type: ignore[attr-defined]

    filling: list[asyncio.Future[int]] = []

    @journeys.on_recover
    async def rebuild_due_index() -> None:
        """After a rebalance: the due times of the accounts this worker now owns. The index is
        emptied here and refilled in the background (:func:`fill_due_index`): read here, the
        whole table held up the recovery, and so every stage, for as long as it took — 10 s with
        100,000 accounts of state (``python -m bench.state_scale``)."""
        for task in filling:
            task.cancel()
        filling.clear()
        direct = DirectTable.of(journeys, app.producer)
        step.due_index.clear()
        if direct is None:  # memory:// (tests, dev): Faust's own table read, in place
            for n, (account, state) in enumerate(journeys.items(), 1):
                step.due_index.note(account, (state or {}).get("due_ms", 0))
                if n % 1000 == 0:
                    await asyncio.sleep(0)
            log.info("timer rules: %d of this worker's accounts have a due time", len(step.due_index))
            return
        refill = step.due_index.refill()
        filling.append(asyncio.ensure_future(fill_due_index(direct, step.due_index, direct.active_partitions(),
                                                            refill)))

    @app.timer(interval=settings.alert_tick_seconds)
    async def tick_due_accounts() -> None:
        """Send a tick to every local account whose timer rule is due (duplicates are harmless)."""
        now = step.clock.now_ms()
        for account in step.due_index.due(now):
            await topics.journey_ticks.send(key=account.encode(), value=step.tick(account, now))
