"""Agent: the person step (:mod:`streams.steps.identity`, keyed by person) and its table."""

from __future__ import annotations

import faust

from streams import tables
from streams.agents import stage_agent
from streams.rules.identity import IdentityConfig
from streams.steps import Names
from streams.steps.identity import Persons


def register(app: faust.App, topics, settings, cfg: IdentityConfig) -> None:
    persons = tables.table(
        app, settings, "identity-persons",
        help="person → account evidence over time (job changes) and the person's other ids.",
    )
    stage_agent(app, topics.persons, Persons(Names.with_prefix(settings.topic_prefix), cfg), settings,
                app.journeys_fence, table=persons, stage="identity-persons")  # type: ignore[attr-defined]
