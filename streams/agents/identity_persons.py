"""Agent: person stage (keyed by person) → timeline, re-keyed by the account resolved."""

from __future__ import annotations


import faust

from schemas.timeline import TimelineEvent
from streams import metrics, tables
from streams.agents import batches, crash_on_error, dead_letter, each_guarded
from streams.agents.batching import BatchTable, Outbox
from streams.agents.links import add_links
from streams.rules.identity import IdentityConfig, new_person, on_person_event


def register(app: faust.App, topics, settings, cfg: IdentityConfig) -> None:
    fence = app.journeys_fence  # type: ignore[attr-defined]
    persons = tables.table(
        app, settings, "identity-persons",
        help="person → account evidence over time (job changes) and the person's other ids.",
    )

    timeline, links = topics.timeline.get_topic_name(), topics.identity_links.get_topic_name()
    dead = topics.inbound_dlq.get_topic_name()

    def on_person(table: BatchTable, person: str, items: list[tuple[faust.EventT, TimelineEvent]],
                  box: Outbox) -> None:
        state = table.get(person) or new_person()
        for _, entry in items:
            outcome = on_person_event(state, entry, person, cfg, replay=entry.replay)
            add_links(box, links, outcome.links)
            for raw in outcome.replays:  # earlier events whose account is now known: journey only
                moved = TimelineEvent.model_validate_json(raw)
                box.add(timeline, moved.journey_account_id.encode(), raw.encode())
            resolved = entry.model_copy(update={"journey_account_id": outcome.account})
            key = outcome.account or entry.account_id or f"person:{person}"
            box.add(timeline, key.encode(), resolved.to_bytes())
            metrics.EVENTS_OUT.labels("identity-persons", "timeline").inc()
        table.put(person, state, items[-1][0])

    @app.agent(topics.persons, name="identity-persons")
    async def identity_persons(stream: faust.StreamT) -> None:
        async for events in batches(stream, fence, settings, "identity-persons"):
            async with crash_on_error("identity-persons"):
                box, table = Outbox(), BatchTable(persons)
                groups: dict[str, list[tuple[faust.EventT, TimelineEvent]]] = {}
                for event in events:
                    try:
                        entry = TimelineEvent.from_bytes(event.message.value)
                    except Exception as exc:  # noqa: BLE001 - not our record format: dead-lettered
                        dead_letter(box, dead, event, "identity-persons", exc)
                        continue
                    groups.setdefault(entry.person_id, []).append((event, entry))
                each_guarded(box, dead, "identity-persons", groups,
                             lambda person, items, out: on_person(table, person, items, out), table)
                fence.check()
                table.flush()
                await box.flush(app)
