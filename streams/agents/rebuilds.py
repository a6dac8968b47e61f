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

import asyncio
import functools
import logging
import time
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
REBUILD_WAIT_SECONDS = 120.0
"""How long a rebuild waits for the store to catch up with the journey before it answers."""


def _read(handle: StoreHandle, account: str, box: dict[str, Any]) -> None:
    box["events"] = queries.timeline(handle.get(), account, limit=REBUILD_MAX_EVENTS, properties=True)


async def caught_up(handle: StoreHandle, account: str, ids: list[str], request_id: str) -> None:
    """Wait (at most ``REBUILD_WAIT_SECONDS``) until the store has resolved the events ``ids``
    to ``account`` — the newest the journey (or a journey merged into it) folded into its
    base: the store's sinks may lag the stream, and the events a journey no longer keeps can
    only come from the store."""
    if not ids:
        return
    deadline = time.monotonic() + REBUILD_WAIT_SECONDS
    while True:
        box: dict[str, Any] = {}
        await until_done(functools.partial(_count, handle, account, ids, box),
                         f"rebuild {request_id}: is the store caught up")
        if box["n"] >= len(ids):
            return
        if time.monotonic() >= deadline:
            log.warning("journey rebuild %s: the store still lacks %d of %d events after %.0f s; answering with "
                        "what it has", request_id, len(ids) - box["n"], len(ids), REBUILD_WAIT_SECONDS)
            return
        await asyncio.sleep(1.0)


async def overridden(handle: StoreHandle, override: list[str] | None, request_id: str) -> None:
    """Wait (at most ``REBUILD_WAIT_SECONDS``) until the store has the identity override
    ``[kind, src, dst, action]`` a re-resolving rebuild was asked for (``journeys identity
    unmerge|merge --kind person_account``): its answer must resolve the account with it."""
    if not override:
        return
    deadline = time.monotonic() + REBUILD_WAIT_SECONDS
    while True:
        box: dict[str, Any] = {}
        await until_done(functools.partial(_has_override, handle, override, box),
                         f"rebuild {request_id}: is the override stored")
        if box["ok"] or time.monotonic() >= deadline:
            if not box["ok"]:
                log.warning("journey rebuild %s: the override %s is still not stored after %.0f s; answering "
                            "without it", request_id, override, REBUILD_WAIT_SECONDS)
            return
        await asyncio.sleep(0.5)


def _has_override(handle: StoreHandle, override: list[str], box: dict[str, Any]) -> None:
    kind, src, dst, action = (str(v) for v in override)
    _, rows = handle.get().query(
        "SELECT action FROM identity_overrides FINAL WHERE kind = {k:String} AND src = {s:String} AND dst = {d:String}",
        {"k": kind, "s": src, "d": dst})
    box["ok"] = bool(rows) and rows[0][0] == action


def override_of(raw: bytes | None) -> list[str] | None:
    """The identity override ``[kind, src, dst, action]`` a rebuild request waits for, if any."""
    override = orjson.loads(raw or b"null").get("override")
    return [str(v) for v in override] if isinstance(override, list) and len(override) == 4 else None


def _count(handle: StoreHandle, account: str, ids: list[str], box: dict[str, Any]) -> None:
    sql = ("SELECT uniqExact(event_id) FROM event_resolution FINAL PREWHERE event_id IN {ids:Array(String)} "
           "WHERE has(accounts, {a:String})")
    _, rows = handle.get().query(sql, {"ids": ids, "a": account})
    box["n"] = int(rows[0][0])


def read_request(raw: bytes | None) -> tuple[str, str, list[str]]:
    """(account, request id, the event ids it waits for) of a rebuild request; ``ValueError``
    (or a JSON, key or type error) for one that cannot be answered — the empty account's read
    is refused, and retried forever it would stop every later rebuild."""
    request = orjson.loads(raw or b"null")
    account, request_id, after = str(request["account"]), str(request["id"]), request.get("after", [])
    if not account:
        raise ValueError("the request names no account")
    if not isinstance(after, list):
        raise TypeError(f"after is a {type(after).__name__}, not a list of event ids")
    return account, request_id, [str(i) for i in after]


def register(app: faust.App, topics: Any, settings: Any, handle: StoreHandle) -> None:
    @app.agent(topics.journey_rebuilds, name="store-rebuilds")
    async def rebuild(stream: faust.StreamT) -> None:
        async for event in stream.events():
            try:
                account, request_id, after = read_request(event.message.value)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                await unreadable(event.message, "journey rebuilds", exc, topics.inbound_dlq)
                continue
            await caught_up(handle, account, after, request_id)
            await overridden(handle, override_of(event.message.value), request_id)
            box: dict[str, Any] = {}
            await until_done(functools.partial(_read, handle, account, box), f"rebuild: the stored events of {account}")
            columns, rows = box["events"]
            for value in rebuild_ticks(account, request_id, columns, rows):
                delivered = await app.producer.send(topics.journey_ticks.get_topic_name(), account.encode(), value,
                                                    None, None, None)
                await delivered
            metrics.JOURNEY_REBUILDS.labels("answered").inc()
            log.info("journey rebuild %s: %d stored events of %s sent back", request_id, len(rows), account)
