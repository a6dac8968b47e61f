"""Agent: person stage (keyed by person) → timeline, re-keyed by the account resolved."""

from __future__ import annotations


import faust

from schemas.timeline import TimelineEvent
from streams import metrics, tables
from streams.agents import fenced, guarded
from streams.agents.links import send_links
from streams.rules.identity import IdentityConfig, new_person, on_person_event


def register(app: faust.App, topics, settings, cfg: IdentityConfig) -> None:
    fence = app.journeys_fence  # type: ignore[attr-defined]
    persons = tables.table(
        app, settings, "identity-persons",
        help="person → account evidence over time (job changes) and the person's other ids.",
    )

    @app.agent(topics.persons, name="identity-persons")
    async def identity_persons(stream: faust.StreamT) -> None:
        async for event in fenced(stream, fence, "identity-persons"):
            async with guarded(event, topics.inbound_dlq, "identity-persons"):
                entry = TimelineEvent.from_bytes(event.message.value)
                person = entry.person_id
                state = persons.get(person) or new_person()
                outcome = on_person_event(state, entry, person, cfg, replay=entry.replay)
                persons[person] = state
                await send_links(topics.identity_links, outcome.links)
                for raw in outcome.replays:  # earlier events whose account is now known: journey only
                    moved = TimelineEvent.model_validate_json(raw)
                    await topics.timeline.send(key=moved.journey_account_id.encode(), value=raw.encode())
                resolved = entry.model_copy(update={"journey_account_id": outcome.account})
                key = outcome.account or entry.account_id or f"person:{person}"
                await topics.timeline.send(key=key.encode(), value=resolved.to_bytes())
                metrics.EVENTS_OUT.labels("identity-persons", "timeline").inc()
