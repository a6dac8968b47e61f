"""Agent: the rejected-lead feedback step (:mod:`streams.steps.lead_feedback`, keyed by lead
source) and its table — the sales rejection rate of a source's MQLs."""

from __future__ import annotations

import faust

from streams import tables
from streams.agents import stage_agent
from streams.definitions_source import DefinitionsSource
from streams.steps import Names
from streams.steps.lead_feedback import LeadFeedback


def register(app: faust.App, topics, settings, definitions: DefinitionsSource) -> None:
    sources = tables.table(
        app, settings, "lead-sources",
        help="lead source → recent lead outcomes and fired alerts.",
    )
    step = LeadFeedback(Names.with_prefix(settings.topic_prefix), definitions.current, public_url=settings.public_url)
    definitions.subscribe(step.use)  # a new version applies from the next batch on
    stage_agent(app, topics.lead_outcomes, step, settings, app.journeys_fence, table=sources)  # type: ignore[attr-defined]
