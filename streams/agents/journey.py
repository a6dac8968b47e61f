"""Agent: the journey step (:mod:`streams.steps.journey`, keyed by account), its table and timer.

It reads the timeline topic and the tick topic (co-partitioned, both keyed by account). A
timer sends ticks for accounts whose time-based alert rules are due, so rules that fire
"when nothing happens" run in the partition that owns the account's state.
"""

from __future__ import annotations

import asyncio
import logging

import faust

from streams import tables
from streams.agents import stage_agent
from streams.definitions_source import DefinitionsSource
from streams.steps import Names
from streams.steps.journey import Journey, alert_record

__all__ = ["alert_record", "register"]

log = logging.getLogger(__name__)


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

    @journeys.on_recover
    async def rebuild_due_index() -> None:
        """After a rebalance: the due times of the accounts this worker now owns, read once."""
        step.due_index.clear()
        for n, (account, state) in enumerate(journeys.items(), 1):  # lazily: one state at a time
            step.due_index.note(account, (state or {}).get("due_ms", 0))
            if n % 1000 == 0:
                await asyncio.sleep(0)
        log.info("timer rules: %d of this worker's accounts have a due time", len(step.due_index))

    @app.timer(interval=settings.alert_tick_seconds)
    async def tick_due_accounts() -> None:
        """Send a tick to every local account whose timer rule is due (duplicates are harmless)."""
        now = step.clock.now_ms()
        for account in step.due_index.due(now):
            await topics.journey_ticks.send(key=account.encode(), value=step.tick(account, now))
