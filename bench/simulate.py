"""The stream's identity path in one process, without Kafka: the same rules the agents call.

decode → normalize → first receipt per id → route (device stage / person stage / timeline) → rows
and identity links, exactly as ``streams/agents/{ingest,dedupe,identity_devices,identity_persons}.py``
wire them, but with one dict per Faust table and events in the given order. Used to fill a
store quickly for the query tests, and by the stitching report (``--in-process``) to tell
rule/query errors from errors of the distributed pipeline (partitioning, ordering, lost links).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import count
from typing import Any, Iterable

from schemas.decode import decode
from schemas.identity import IdentityLink
from schemas.timeline import TimelineEvent
from streams.rules.identity import (
    IdentityConfig, new_device, new_person, on_device_event, on_person_event, person_key,
)  # fmt: skip
from streams.rules.normalize import normalize


class InProcessPipeline:
    """Feeds raw events through the identity rules; collects timeline rows and the newest links."""

    def __init__(self, cfg: IdentityConfig | None = None, now: datetime | None = None) -> None:
        self.cfg = cfg or IdentityConfig()
        self.now = now or datetime.now(timezone.utc)
        self.devices: dict[str, dict[str, Any]] = {}
        self.persons: dict[str, dict[str, Any]] = {}
        self.links: dict[tuple[str, str], IdentityLink] = {}
        self.rows: list[TimelineEvent] = []
        self.seen: set[str] = set()  # the dedupe stage: later receipts of an id stop there
        self._version = count(1)

    def _keep(self, links: list[IdentityLink]) -> None:
        for link in links:
            self.links[(link.kind, link.src)] = link.model_copy(update={"version": next(self._version)})

    def _person(self, entry: TimelineEvent, person: str, replay: bool = False) -> None:
        state = self.persons.setdefault(person, new_person())
        out = on_person_event(state, entry, person, self.cfg, replay=replay)
        self._keep(out.links)
        if not replay:
            self.rows.append(entry.model_copy(update={"journey_account_id": out.account}))

    def feed(self, raw: bytes) -> None:
        inbound, when = decode(raw, received_at=self.now, max_future=timedelta(seconds=300))
        entry = normalize(inbound, event_time=when, received_at=self.now, source="simulate")
        if entry.event_id in self.seen:
            return
        self.seen.add(entry.event_id)
        if entry.anonymous_id and entry.anonymous_id.lower() not in self.cfg.blocked_values:
            state = self.devices.setdefault(entry.anonymous_id, new_device())
            out = on_device_event(state, entry, self.cfg)
            self._keep(out.links)
            for earlier in out.replays:
                replayed = TimelineEvent.model_validate_json(earlier)
                self._person(replayed.model_copy(update={"replay": True, "person_id": out.person}), out.person, True)
            if out.person:
                self._person(entry.model_copy(update={"person_id": out.person}), out.person)
            else:
                self.rows.append(entry)
            return
        person = person_key(entry, self.cfg)
        if person:
            self._person(entry.model_copy(update={"person_id": person}), person)
        else:
            self.rows.append(entry)

    def feed_all(self, lines: Iterable[bytes]) -> "InProcessPipeline":
        for line in lines:
            self.feed(line)
        return self

    def store_into(self, store: Any, batch: int = 50_000) -> None:
        """Write the rows and links to a migrated store (``sinks.clickhouse.client.Store``)."""
        from sinks.clickhouse import ddl, resolution
        from sinks.clickhouse.rows import LINK_COLUMNS, TIMELINE_COLUMNS, link_row, timeline_row

        ddl.migrate(store)
        for i in range(0, len(self.rows), batch):
            rows = [timeline_row(e) for e in self.rows[i : i + batch]]
            store.insert("timeline", rows, TIMELINE_COLUMNS, dedup_token=f"simulate-timeline-{i}")
        links = [link_row(link) for link in self.links.values()]
        for i in range(0, len(links), batch):
            store.insert("identity_links", links[i : i + batch], LINK_COLUMNS, dedup_token=f"simulate-links-{i}")
        resolution.refresh_all(store)  # what the store process keeps current batch by batch
