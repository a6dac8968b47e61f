"""One route table, two web servers: the worker's (Faust views) and ``journeys serve``'s (plain aiohttp).

A handler of the API or the UI is ``async (ctx, query, **path_params) -> Reply``: it reads the
store through ``ctx`` and answers a status and a body, and knows nothing of the server. The
adapters below turn a :data:`Route` list into Faust views (:func:`add_to_faust`) or aiohttp routes
(:func:`add_to_aiohttp`), so both servers answer the same requests the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Literal, Mapping

from aiohttp import web
from faust.utils import json as _json

from streams import metrics


@dataclass
class Context:
    """What the handlers read: the store (a :class:`~streams.storehandle.StoreHandle` or anything
    with ``reader()``), the definitions (a :class:`~streams.definitions_source.DefinitionsSource`, or None)
    and the tenant."""

    handle: Any = None
    definitions: Any = None
    tenant: str = ""  # Settings.tenant: the label /metrics adds to every series ("" for none)


@dataclass
class Reply:
    """A handler's answer: ``kind`` says how ``value`` is sent (JSON, an HTML page, raw bytes)."""

    value: Any
    status: int = 200
    kind: Literal["json", "html", "bytes"] = "json"
    content_type: str | None = None  # bytes only (a charset goes in headers["Content-Type"] instead)
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[..., Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    path: str  # aiohttp/Faust pattern, e.g. /api/v1/timeline/{account_id}
    name: str  # unique view name
    handler: Handler


def error(status: int, message: str) -> Reply:
    return Reply({"error": message}, status=status)


def measured(route: Route) -> Handler:
    """``route``'s handler, counting each answer and its time (``journeys_api_requests_total``,
    ``journeys_api_request_seconds``) on either server; a handler that raises counts as 500."""

    async def handle(ctx: Context, query: Mapping[str, str], **params: str) -> Reply:
        started, status = time.perf_counter(), 500
        try:
            reply = await route.handler(ctx, query, **params)
            status = reply.status
            return reply
        finally:
            metrics.api_request(route.name, status, time.perf_counter() - started)

    return handle


def add_to_faust(app: Any, routes: list[Route], ctx: Context) -> None:
    """Register each route as a Faust view (GET) on the worker's web server."""
    from faust.web import Request, Response, View

    def view_of(route: Route) -> type[View]:
        handler = measured(route)

        class RouteView(View):
            async def get(self, request: Request, **params: str) -> Response:
                reply = await handler(ctx, request.query, **params)
                headers = dict(reply.headers) or None
                if reply.kind == "json":
                    return self.json(reply.value, status=reply.status, headers=headers)
                if reply.kind == "html":
                    return self.html(reply.value, status=reply.status, headers=headers)
                return self.bytes(reply.value, status=reply.status, content_type=reply.content_type, headers=headers)

        RouteView.__name__ = RouteView.__qualname__ = "".join(p.title() for p in route.name.split("-")) + "View"
        return RouteView

    for route in routes:
        app.page(route.path, name=route.name)(view_of(route))


def to_aiohttp(reply: Reply) -> web.Response:
    """The aiohttp response of a reply, as Faust's aiohttp driver would build it."""
    headers = dict(reply.headers)
    if reply.kind == "json":
        payload = _json.dumps(reply.value)
        if isinstance(payload, bytes):
            return web.Response(body=payload, content_type="application/json", charset="utf-8",
                                status=reply.status, headers=headers)
        return web.Response(text=payload, content_type="application/json", status=reply.status, headers=headers)
    if reply.kind == "html":
        return web.Response(text=reply.value, content_type="text/html", status=reply.status, headers=headers)
    return web.Response(body=reply.value, content_type=reply.content_type, status=reply.status, headers=headers)


def add_to_aiohttp(web_app: web.Application, routes: list[Route], ctx: Context) -> None:
    """Register each route (GET, and HEAD) on a plain aiohttp application."""

    def handler_of(route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
        handler = measured(route)

        async def handle(request: web.Request) -> web.Response:
            query: Mapping[str, str] = request.query
            return to_aiohttp(await handler(ctx, query, **request.match_info))

        return handle

    for route in routes:
        web_app.router.add_get(route.path, handler_of(route), name=route.name)
