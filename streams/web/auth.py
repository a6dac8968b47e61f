"""Bearer-token protection and read-only rule for the JSON API and the web UI.

One aiohttp middleware on the worker's web server (Faust web runs on aiohttp):

- When ``JOURNEYS_API_TOKEN`` is set, every request needs ``Authorization: Bearer <token>``
  (else 401 ``{"error": "missing or wrong token"}``) except the public paths: ``/health/…``
  and ``/metrics`` (probes, Prometheus) and the UI's pages and static files (``/ui/…``), which
  hold no data and must load so the browser can ask for the token — every piece of data they
  show comes from ``/api/…``. Deny by default, so Faust's own views (``/table/<name>/<key>/``
  serves raw table state, ``/router/``) and routes added later are covered too.
- ``/api/…`` and ``/ui/…`` are read-only: any method but GET/HEAD gets 405 JSON.
"""

from __future__ import annotations

import hmac
from typing import Any, Awaitable, Callable

import faust
from aiohttp import web
from pydantic import SecretStr

PUBLIC = ("/health/", "/metrics", "/ui/")
READ_ONLY = ("/api/", "/ui/")
METHODS = frozenset({"GET", "HEAD"})
UNAUTHORIZED = {"error": "missing or wrong token"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def authorized(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (constant-time compare)."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


def public(path: str) -> bool:
    """Paths served without a token: health, metrics and the UI's (data-free) pages and files."""
    return path.startswith(PUBLIC) or path == "/ui"


def middleware(token: str | None) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The aiohttp middleware enforcing the rules above (``token=None``: no token needed)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith(READ_ONLY) or path in ("/api", "/ui"):
            if request.method not in METHODS:
                return web.json_response({"error": "read-only: only GET is allowed"}, status=405,
                                         headers={"Allow": "GET, HEAD"})
        if token is not None and not public(path) and not authorized(request.headers.get("Authorization"), token):
            return web.json_response(UNAUTHORIZED, status=401, headers={"WWW-Authenticate": 'Bearer realm="journeys"'})
        return await handler(request)

    return guard


def install(app: faust.App, token: SecretStr | str | None = None) -> None:
    """Add the middleware to the app's web server once (later calls are no-ops).

    ``token`` defaults to ``JOURNEYS_API_TOKEN`` from the settings ``create_app`` attached.
    Call before the worker starts (aiohttp freezes its middlewares on start-up).
    """
    if getattr(app, "journeys_auth_installed", False):
        return
    if token is None:
        settings = getattr(app, "journeys_settings", None)
        token = getattr(settings, "api_token", None)
    if isinstance(token, SecretStr):
        token = token.get_secret_value()
    web_app: Any = app.web.web_app  # type: ignore[attr-defined]
    web_app.middlewares.append(middleware(token or None))
    app.journeys_auth_installed = True  # type: ignore[attr-defined]
