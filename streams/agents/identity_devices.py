"""Agent: device stage (keyed by anonymousId) → person stage, or storage while anonymous."""

from __future__ import annotations


import faust

from schemas.timeline import TimelineEvent
from streams import metrics, tables
from streams.agents import fenced, guarded
from streams.agents.links import send_links
from streams.rules.identity import IdentityConfig, new_device, on_device_event


def register(app: faust.App, topics, settings, cfg: IdentityConfig) -> None:
    fence = app.journeys_fence  # type: ignore[attr-defined]
    devices = tables.table(
        app, settings, "identity-devices",
        help="anonymousId → persons over time, and anonymous events awaiting identification.",
    )

    @app.agent(topics.events, name="identity-devices")
    async def identity_devices(stream: faust.StreamT) -> None:
        async for event in fenced(stream, fence, "identity-devices"):
            async with guarded(event, topics.inbound_dlq, "identity-devices"):
                entry = TimelineEvent.from_bytes(event.message.value)
                device = entry.anonymous_id
                state = devices.get(device) or new_device()
                outcome = on_device_event(state, entry, cfg)
                devices[device] = state
                await send_links(topics.identity_links, outcome.links)
                for raw in outcome.replays:
                    earlier = TimelineEvent.model_validate_json(raw)
                    await topics.persons.send(
                        key=outcome.person.encode(),
                        value=earlier.model_copy(update={"replay": True, "person_id": outcome.person}).to_bytes(),
                    )
                if outcome.person:
                    await topics.persons.send(
                        key=outcome.person.encode(),
                        value=entry.model_copy(update={"person_id": outcome.person}).to_bytes(),
                    )
                else:
                    await topics.timeline.send(key=f"anon:{device}".encode(), value=entry.to_bytes())
                metrics.EVENTS_OUT.labels("identity-devices", "persons" if outcome.person else "timeline").inc()
