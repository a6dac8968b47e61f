"""Agent: rejected-lead feedback (keyed by lead source) — sales rejection rate of a source's MQLs."""

from __future__ import annotations

import faust

from schemas.timeline import TimelineEvent, utc_ms
from streams import metrics, tables
from streams.agents import fenced, guarded
from streams.agents.journey import alert_record
from streams.definitions_source import DefinitionsSource
from streams.rules import alerts as rules


def register(app: faust.App, topics, settings, definitions: DefinitionsSource) -> None:
    fence = app.journeys_fence  # type: ignore[attr-defined]
    sources = tables.table(
        app, settings, "lead-sources",
        help="lead source → recent lead outcomes and fired alerts.",
    )

    @app.agent(topics.lead_outcomes, name="lead-feedback")
    async def lead_feedback(stream: faust.StreamT) -> None:
        async for event in fenced(stream, fence):
            async with guarded(event, topics.inbound_dlq, "lead-feedback"):
                entry = TimelineEvent.from_bytes(event.message.value)
                source = str(entry.properties.get("leadSource") or "unknown")
                state = sources.get(source) or {}
                found = rules.on_lead_outcome(state, source, str(entry.properties.get("status")),
                                              utc_ms(entry.event_time), str(entry.properties.get("leadId")), definitions.current)
                sources[source] = state
                for alert in found:
                    metrics.ALERTS_FIRED.labels(alert.rule).inc()
                    record = alert_record(alert, settings.public_url)
                    await topics.alerts.send(key=record.alert_id.encode(), value=record.to_bytes())
