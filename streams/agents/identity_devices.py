"""Agent: device stage (keyed by anonymousId) → person stage, or storage while anonymous."""

from __future__ import annotations


import faust

from schemas.timeline import TimelineEvent
from streams import metrics, tables
from streams.agents import batches, crash_on_error, dead_letter, each_guarded
from streams.agents.batching import BatchTable, Outbox
from streams.agents.links import add_links
from streams.rules.identity import IdentityConfig, new_device, on_device_event


def register(app: faust.App, topics, settings, cfg: IdentityConfig) -> None:
    fence = app.journeys_fence  # type: ignore[attr-defined]
    devices = tables.table(
        app, settings, "identity-devices",
        help="anonymousId → persons over time, and anonymous events awaiting identification.",
    )

    persons, timeline = topics.persons.get_topic_name(), topics.timeline.get_topic_name()
    links, dead = topics.identity_links.get_topic_name(), topics.inbound_dlq.get_topic_name()

    def on_device(table: BatchTable, device: str, items: list[tuple[faust.EventT, TimelineEvent]],
                  box: Outbox) -> None:
        state = table.get(device) or new_device()
        for event, entry in items:
            outcome = on_device_event(state, entry, cfg)
            add_links(box, links, outcome.links)
            for raw in outcome.replays:
                earlier = TimelineEvent.model_validate_json(raw)
                box.add(persons, outcome.person.encode(),
                        earlier.model_copy(update={"replay": True, "person_id": outcome.person}).to_bytes())
            if outcome.person:
                box.add(persons, outcome.person.encode(), entry.model_copy(update={"person_id": outcome.person}).to_bytes())
            else:
                box.add(timeline, f"anon:{device}".encode(), event.message.value)
            metrics.EVENTS_OUT.labels("identity-devices", "persons" if outcome.person else "timeline").inc()
        table.put(device, state, items[-1][0])

    @app.agent(topics.events, name="identity-devices")
    async def identity_devices(stream: faust.StreamT) -> None:
        async for events in batches(stream, fence, settings, "identity-devices"):
            async with crash_on_error("identity-devices"):
                box, table = Outbox(), BatchTable(devices)
                groups: dict[str, list[tuple[faust.EventT, TimelineEvent]]] = {}
                for event in events:
                    try:
                        entry = TimelineEvent.from_bytes(event.message.value)
                    except Exception as exc:  # noqa: BLE001 - not our record format: dead-lettered
                        dead_letter(box, dead, event, "identity-devices", exc)
                        continue
                    groups.setdefault(entry.anonymous_id, []).append((event, entry))
                each_guarded(box, dead, "identity-devices", groups,
                             lambda device, items, out: on_device(table, device, items, out), table)
                fence.check()
                table.flush()
                await box.flush(app)
