"""Agent (store role): privacy requests (``journeys privacy forget``) → the store, then the stream.

For each request, once: find the person in the store, delete and pseudonymise their rows
(:mod:`sinks.clickhouse.privacy`), send the stream stages a control record per key that may
hold them — a ``forget`` record to the device stage per device, to the person stage per
person id, a tick with ``forget`` to the journey stage per account — and, once those are on
the broker, write the audit row. A failing step is retried (every statement is idempotent);
a request whose audit row exists is done already (a redelivery).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import faust
from pydantic import ValidationError

from schemas.privacy import ForgetRequest
from sinks.clickhouse import privacy as store_privacy
from sinks.clickhouse.writer import until_done
from streams import topics as t
from streams.agents.store import unreadable
from streams.rules import privacy as rules
from streams.steps.journey import tick_value
from streams.storehandle import StoreHandle

log = logging.getLogger(__name__)


def register(app: faust.App, topics: Any, settings: Any, handle: StoreHandle) -> None:
    key = settings.pii.key()
    control = [(t.CONTROL_HEADER, t.CONTROL_FORGET)]

    async def send(topic: faust.TopicT, key_: str, value: bytes, headers: list | None = None) -> None:
        delivered = await app.producer.send(topic.get_topic_name(), key_.encode(), value, None, None, headers)
        await delivered

    @app.agent(topics.privacy, name="store-privacy")
    async def forget(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                request = ForgetRequest.model_validate_json(event.message.value)
            except ValidationError as exc:
                await unreadable(event.message, "privacy_requests", exc, topics.inbound_dlq)
                continue
            done: dict[str, Any] = {}

            # Each closure runs (in a thread) before this iteration moves on; the defaults bind
            # this iteration's values all the same, so no later request can be seen by it.
            def check(done: dict[str, Any] = done, request: ForgetRequest = request) -> None:
                done["done"] = store_privacy.completed(handle.get(), request.request_id)

            await until_done(check, "privacy: audit lookup")
            if done["done"]:
                continue

            def run(done: dict[str, Any] = done, request: ForgetRequest = request) -> None:
                store = handle.get()
                subject = store_privacy.find(store, request.kind, request.identifier)
                ids = subject.ids
                done["subject"] = subject
                done["counts"] = store_privacy.forget(store, subject, lambda p: rules.names_them(p, ids, key),
                                                      rules.needles(ids))

            await until_done(run, f"privacy: forget request {request.request_id}")
            subject, (deleted, changed) = done["subject"], done["counts"]
            for device in subject.devices:
                await send(topics.events, device, b"", control)
            for person in subject.persons:
                await send(topics.persons, person, b"", control)
            now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
            for account in subject.accounts:
                await send(topics.journey_ticks, account, tick_value(account, now_ms, subject.persons))
            row = store_privacy.audit_row(request.request_id, request.kind, request.identifier_hash,
                                          request.requested_by, request.requested_at, deleted, changed,
                                          datetime.now(timezone.utc))

            def audit(row: Any = row) -> None:
                handle.get().insert("privacy_requests", [row], store_privacy.AUDIT_COLUMNS)

            await until_done(audit, "privacy: audit row")
            log.info("privacy request %s done: %d ids, %d accounts; deleted %s; pseudonymised %s",
                     request.request_id, len(subject.ids), len(subject.accounts), deleted, changed)
