"""The stream topology as data: each stage, the topics it reads (fields of
:class:`streams.steps.Names`), what they are keyed by, its table, and what it writes.

Kafka hops per event today: inbound → receipts → events (device) → persons → timeline, plus
the journey's outputs (journey updates, alerts) to the store — see docs/architecture.md. Both
runners build the same steps from :func:`build`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from schemas.definitions import Definitions
from streams.rules.identity import IdentityConfig
from streams.steps import Names, Step
from streams.steps.dedupe import Dedupe
from streams.steps.identity import Devices, Persons
from streams.steps.ingest import Ingest
from streams.steps.journey import Journey
from streams.steps.lead_feedback import LeadFeedback


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: tuple[str, ...]
    key: str
    table: str | None
    outputs: tuple[str, ...]


TOPOLOGY: tuple[Stage, ...] = (
    Stage("ingest", ("inbound",), "as produced", None, ("receipts", "inbound_dlq")),
    Stage("dedupe", ("receipts",), "event id", "event-ids", ("events", "persons", "timeline")),
    Stage("identity-devices", ("events",), "anonymousId", "identity-devices", ("persons", "timeline", "identity_links")),
    Stage("identity-persons", ("persons",), "person key", "identity-persons",
          ("timeline", "identity_links", "journey_ticks")),
    Stage("journey", ("timeline", "journey_ticks"), "account", "journeys",
          ("journey_updates", "alerts", "lead_outcomes", "journey_ticks", "journey_rebuilds")),
    Stage("lead-feedback", ("lead_outcomes",), "lead source", "lead-sources", ("alerts",)),
)
"""Every stage's outputs may also go to ``inbound_dlq`` (the guard)."""


def build(names: Names, cfg: IdentityConfig, defs: Definitions, *, dedupe: bool = True,
          max_future: timedelta = timedelta(seconds=300), max_depth: int = 32, email_key: bytes | None = None,
          public_url: str = "http://127.0.0.1:6066", alert_idle_ms: int = 300_000) -> dict[str, Step]:
    """The steps of :data:`TOPOLOGY` by stage name (without ``dedupe``: no dedupe stage)."""
    steps: dict[str, Step] = {
        "ingest": Ingest(names, cfg, dedupe=dedupe, max_future=max_future, max_depth=max_depth, email_key=email_key),
        "identity-devices": Devices(names, cfg),
        "identity-persons": Persons(names, cfg),
        "journey": Journey(names, defs, public_url=public_url, alert_idle_ms=alert_idle_ms),
        "lead-feedback": LeadFeedback(names, defs, public_url=public_url),
    }
    if dedupe:
        steps["dedupe"] = Dedupe(names)
    return steps
