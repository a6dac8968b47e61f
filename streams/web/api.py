"""Read-only JSON API (``/api/v1/…``): on the store process (Faust's web server), where the CLI
uses it when up, and on ``journeys serve`` (:mod:`streams.web.serve`). The handlers are shared
(:mod:`streams.web.routes`): each takes the context, the query string and the path parameters."""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any, Mapping

from faust.web.exceptions import ServiceUnavailable

from sinks.clickhouse import privacy, queries
from sinks.clickhouse.client import QueryLimitExceeded
from streams import reports
from streams.web import auth
from streams.web.routes import Context, Reply, Route, add_to_faust, error


async def read(handle: Any, fn, *args):
    """``fn(reader, *args)`` off the loop; a read stopped by its limits
    (``JOURNEYS_API_QUERY_SECONDS`` / ``_MEMORY_MB``) is a 503 ``{"error": …}`` that says which."""
    try:
        return await asyncio.to_thread(fn, handle.reader(), *args)
    except QueryLimitExceeded as exc:
        raise ServiceUnavailable(str(exc)) from exc


def limit_of(query: Mapping[str, str], default: int = 1000) -> int:
    raw = query.get("limit", str(default))
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not 1 <= int(raw) <= 100_000:
        raise ValueError("limit must be an integer between 1 and 100000")
    return int(raw)


def _capped(handler):
    """A read stopped by its limits answers 503 ``{"error": …}`` (as a Faust view raising it would)."""

    async def wrapped(ctx: Context, query: Mapping[str, str], **params: str) -> Reply:
        try:
            return await handler(ctx, query, **params)
        except ServiceUnavailable as exc:
            return error(exc.code, exc.detail)

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


@_capped
async def timeline(ctx: Context, query: Mapping[str, str], account_id: str) -> Reply:
    """A page of the account's journey (``limit`` events, after the cursor ``after``); when
    there are more, ``next`` is the cursor of the next page (``?after=<next>``)."""
    after = query.get("after") or None
    try:
        limit = limit_of(query)
        if after is not None:
            queries.parse_cursor(after)
    except ValueError as exc:
        return error(400, str(exc))
    cols, rows, after_last = await read(ctx.handle, queries.timeline_page, account_id, limit, after)
    body: dict = {"account_id": account_id, "events": queries.records(cols, rows)}
    if after_last is not None:
        body["next"] = after_last
    return Reply(body)


@_capped
async def accounts(ctx: Context, query: Mapping[str, str]) -> Reply:
    cols, rows = await read(ctx.handle, queries.accounts, 100)
    return Reply({"accounts": queries.records(cols, rows)})


@_capped
async def dead_letters(ctx: Context, query: Mapping[str, str]) -> Reply:
    cols, rows = await read(ctx.handle, queries.dead_letters, 100)
    return Reply({"dead_letters": queries.records(cols, rows)})


@_capped
async def report(ctx: Context, query: Mapping[str, str], name: str) -> Reply:
    if ctx.definitions is None:
        return error(503, "no definitions loaded")
    params = dict(query)
    definitions = ctx.definitions.current
    try:
        records = await read(ctx.handle, lambda reader: reports.run(name, reader, definitions, params))
    except ValueError as exc:
        return error(400, str(exc))
    return Reply({"report": name, "params": params, "rows": records})


@_capped
async def privacy_requests(ctx: Context, query: Mapping[str, str]) -> Reply:
    """The audit of privacy requests (no identifier: its hash), newest first; ``?id=`` one request."""
    request_id = query.get("id") or None
    if request_id is not None and len(request_id) > 64:
        return error(400, "id is longer than 64 characters")
    cols, rows = await read(ctx.handle, privacy.requests, request_id)
    return Reply({"requests": queries.records(cols, rows)})


@_capped
async def stats(ctx: Context, query: Mapping[str, str]) -> Reply:
    return Reply(await read(ctx.handle, queries.stats))


async def openapi(ctx: Context, query: Mapping[str, str]) -> Reply:
    spec = (resources.files("streams") / "web" / "openapi.json").read_bytes()
    return Reply(spec, kind="bytes", content_type="application/json")


ROUTES = [
    Route("/api/v1/timeline/{account_id}", "api-timeline", timeline),
    Route("/api/v1/accounts", "api-accounts", accounts),
    Route("/api/v1/dead-letters", "api-dead-letters", dead_letters),
    Route("/api/v1/reports/{name}", "api-report", report),
    Route("/api/v1/privacy/requests", "api-privacy-requests", privacy_requests),
    Route("/api/v1/stats", "api-stats", stats),
    Route("/api/v1/openapi.json", "api-openapi", openapi),
]
"""The JSON API, shared by the worker and ``journeys serve``."""


def register(app: Any, handle: Any, definitions: Any = None) -> None:
    auth.install(app)  # bearer token (JOURNEYS_API_TOKEN) on /api/, read-only /api/ and /ui/
    add_to_faust(app, ROUTES, Context(handle, definitions))
