"""Agent (store role): journey rebuild requests → the account's stored events, back to its journey.

The journey stage keeps an account's last facts and folds older ones into a base; an event
older than every fact it kept is applied to the base out of order and the stage asks for a
rebuild (``journeys-journey-rebuilds-v1``, keyed by account). This agent reads the account's
events from the store as the timeline resolves them (:func:`sinks.clickhouse.queries.timeline`,
with properties) and sends them to the journey as rebuild ticks
(:func:`streams.steps.journey.rebuild_ticks`), in time order, the last one marked. The journey
applies them to a fresh journey and swaps it in. A redelivered request is answered again (the
journey ignores an answer to a request it no longer waits for); a failing read is retried.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import faust
import orjson

from sinks.clickhouse import queries
from sinks.clickhouse.writer import until_done
from streams import metrics
from streams.agents.store import unreadable
from streams.steps.journey import rebuild_ticks
from streams.storehandle import StoreHandle

log = logging.getLogger(__name__)

REBUILD_MAX_EVENTS = 1_000_000
"""Most events of one account a rebuild reads (the newest are the ones it would lose)."""


def _read(handle: StoreHandle, account: str, box: dict[str, Any]) -> None:
    box["events"] = queries.timeline(handle.get(), account, limit=REBUILD_MAX_EVENTS, properties=True)


def register(app: faust.App, topics: Any, settings: Any, handle: StoreHandle) -> None:
    @app.agent(topics.journey_rebuilds, name="store-rebuilds")
    async def rebuild(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                request = orjson.loads(event.message.value)
                account, request_id = str(request["account"]), str(request["id"])
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                await unreadable(event.message, "journey rebuilds", exc, topics.inbound_dlq)
                continue
            box: dict[str, Any] = {}
            await until_done(functools.partial(_read, handle, account, box), f"rebuild: the stored events of {account}")
            columns, rows = box["events"]
            for value in rebuild_ticks(account, request_id, columns, rows):
                delivered = await app.producer.send(topics.journey_ticks.get_topic_name(), account.encode(), value,
                                                    None, None, None)
                await delivered
            metrics.JOURNEY_REBUILDS.labels("answered").inc()
            log.info("journey rebuild %s: %d stored events of %s sent back", request_id, len(rows), account)
