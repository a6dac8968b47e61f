"""Agent: the device step (:mod:`streams.steps.identity`, keyed by anonymousId) and its table."""

from __future__ import annotations

import faust

from streams import tables
from streams.agents import stage_agent
from streams.rules.identity import IdentityConfig
from streams.steps import Names
from streams.steps.identity import Devices


def register(app: faust.App, topics, settings, cfg: IdentityConfig) -> None:
    devices = tables.table(
        app, settings, "identity-devices",
        help="anonymousId → persons over time, and anonymous events awaiting identification.",
    )
    stage_agent(app, topics.events, Devices(Names.with_prefix(settings.topic_prefix), cfg), settings,
                app.journeys_fence, table=devices, stage="identity-devices")  # type: ignore[attr-defined]
