"""Agent: the ingest step (:mod:`streams.steps.ingest`) on the inbound topic."""

from __future__ import annotations

from datetime import timedelta

import faust

from streams.agents import stage_agent
from streams.settings import Settings
from streams.steps import Names
from streams.steps.ingest import ROUTES, Ingest, route_of

__all__ = ["ROUTES", "register", "route_of"]


def register(app: faust.App, topics, settings: Settings) -> None:
    step = Ingest(Names.with_prefix(settings.topic_prefix), settings.identity.config(settings.pii.key()),
                  dedupe=settings.dedupe_days > 0, max_future=timedelta(seconds=settings.max_future_seconds),
                  max_depth=settings.max_event_depth, email_key=settings.pii.key())
    stage_agent(app, topics.inbound, step, settings, app.journeys_fence, stage="ingest")  # type: ignore[attr-defined]
