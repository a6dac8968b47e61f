"""Steps: the device stage (keyed by anonymousId) and the person stage (keyed by person).

device → person stage once the device's person is known (earlier anonymous events re-sent as
replays), else straight to the timeline while anonymous; person → timeline, re-keyed by the
account resolved at the event's time. Identity links go out on every change.

A control record with the ``forget`` header (:func:`streams.steps.is_forget`, sent by the
store process for ``journeys privacy forget``) deletes its key's state: the device's persons
and anonymous buffer, the person's accounts, aliases and recent events. A later event of the
same id starts afresh.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.identity import IdentityLink
from schemas.timeline import TimelineEvent
from streams import metrics
from streams.rules.identity import IdentityConfig, new_device, new_person, on_device_event, on_person_event
from streams.steps import Names, Outbox, States, dead_letter, is_forget


def add_links(out: Outbox, topic: str, links: Iterable[IdentityLink]) -> None:
    """Each link keyed ``kind:src``, versioned by processing time (newest version wins)."""
    version = time.time_ns() // 1000
    for link in links:
        out.add(topic, f"{link.kind}:{link.src}".encode(), link.model_copy(update={"version": version}).to_bytes())


def _entries(step_name: str, names: Names, records: Sequence[Any], out: Outbox,
             key_of: Any) -> dict[str, list[tuple[Any, ...]]]:
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for record in records:
        if is_forget(record):  # a privacy request: the key's state goes (handled in order)
            groups.setdefault((record.key or b"").decode(), []).append((record, None))
            continue
        try:
            entry = TimelineEvent.from_bytes(record.value)
        except Exception as exc:  # noqa: BLE001 - not our record format: dead-lettered
            dead_letter(out, names.inbound_dlq, record, step_name, exc)
            continue
        groups.setdefault(key_of(entry), []).append((record, entry))
    return groups


def _keep(states: States, key: str, state: dict[str, Any] | None, record: Any) -> None:
    """Write the key's state, or delete it if a forget left none (and there was one)."""
    if state is not None:
        states.put(key, state, record)
    elif states.get(key) is not None or key in states.records:
        states.delete(key, record)


@dataclass
class Devices:
    names: Names
    cfg: IdentityConfig
    name: str = "identity-devices"

    def group(self, records: Sequence[Any], out: Outbox) -> dict[str, list[tuple[Any, ...]]]:
        return _entries(self.name, self.names, records, out, lambda e: e.anonymous_id)

    def handle(self, device: str, items: list[tuple[Any, ...]], states: States, out: Outbox) -> None:
        state = states.get(device)
        for record, entry in items:
            if entry is None:  # forget this device
                state = None
                continue
            state = state or new_device()
            outcome = on_device_event(state, entry, self.cfg)
            add_links(out, self.names.identity_links, outcome.links)
            for raw in outcome.replays:
                earlier = TimelineEvent.model_validate_json(raw)
                out.add(self.names.persons, outcome.person.encode(),
                        earlier.model_copy(update={"replay": True, "person_id": outcome.person}).to_bytes())
            if outcome.person:
                out.add(self.names.persons, outcome.person.encode(),
                        entry.model_copy(update={"person_id": outcome.person}).to_bytes())
            else:
                out.add(self.names.timeline, f"anon:{device}".encode(), record.value)
            metrics.child(metrics.EVENTS_OUT, self.name, "persons" if outcome.person else "timeline").inc()
        _keep(states, device, state, items[-1][0])


@dataclass
class Persons:
    names: Names
    cfg: IdentityConfig
    name: str = "identity-persons"

    def group(self, records: Sequence[Any], out: Outbox) -> dict[str, list[tuple[Any, ...]]]:
        return _entries(self.name, self.names, records, out, lambda e: e.person_id)

    def handle(self, person: str, items: list[tuple[Any, ...]], states: States, out: Outbox) -> None:
        state = states.get(person)
        for _, entry in items:
            if entry is None:  # forget this person
                state = None
                continue
            state = state or new_person()
            outcome = on_person_event(state, entry, person, self.cfg, replay=entry.replay)
            add_links(out, self.names.identity_links, outcome.links)
            for link in outcome.links:  # a domain account merged: its journey joins the target's
                if link.kind == "account_merge":
                    out.add(self.names.journey_ticks, link.src.encode(),
                            orjson.dumps({"account": link.src, "merge_into": link.dsts[0]}))
            for raw in outcome.replays:  # earlier events whose account is now known: journey only
                moved = TimelineEvent.model_validate_json(raw)
                out.add(self.names.timeline, moved.journey_account_id.encode(), raw.encode())
            resolved = entry.model_copy(update={"journey_account_id": outcome.account})
            key = outcome.account or entry.account_id or f"person:{person}"
            out.add(self.names.timeline, key.encode(), resolved.to_bytes())
            metrics.child(metrics.EVENTS_OUT, self.name, "timeline").inc()
        _keep(states, person, state, items[-1][0])
