"""The analyst web UI (``/ui/…``) on the store process's web server (issue #7) and on ``journeys serve``.

Pages are one HTML shell each, drawn in the browser by hand-written JavaScript from
``streams/web/static/`` (no CDN, no framework; charts are SVG built by the scripts). The pages
and scripts hold no data: everything shown comes from the JSON API (``/api/v1/…``), which the
scripts call with the bearer token the user typed once (kept in ``sessionStorage``) or passed
once as ``?token=``. See docs/ui.md.
"""

from __future__ import annotations

import functools
import html
import re
from importlib import resources
from typing import Mapping

import faust

from streams.settings import Settings
from streams.web import auth
from streams.web.routes import Context, Reply, Route, add_to_faust

PAGES = {
    "search": "Accounts",
    "account": "Account journey",
    "funnel": "Funnel",
    "alerts": "Alerts",
    "attribution": "Attribution",
}
"""Page name (also its script ``static/<name>.js``) → title."""

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg)$")

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",  # a ?token= in the address never leaves in a Referer
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

SHELL = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · buyer journeys</title>
<link rel="stylesheet" href="/ui/static/ui.css">
<link rel="icon" href="data:,">
</head>
<body data-page="{page}">
<header class="top">
  <a class="brand" href="/ui/">buyer journeys</a>
  <nav>
    <a href="/ui/" data-nav="search">Accounts</a>
    <a href="/ui/funnel" data-nav="funnel">Funnel</a>
    <a href="/ui/alerts" data-nav="alerts">Alerts</a>
    <a href="/ui/attribution" data-nav="attribution">Attribution</a>
  </nav>
  <button type="button" id="forget-token" class="link" hidden>forget token</button>
</header>
<main id="main"><p class="muted">Loading…</p></main>
<div id="tooltip" class="tooltip" role="tooltip" hidden></div>
<script type="module" src="/ui/static/{page}.js"></script>
</body>
</html>
"""


def shell(page: str) -> str:
    """The HTML of one page (static: the account id is read from the address by the script)."""
    return SHELL.format(title=html.escape(PAGES[page]), page=page)


def static_file(name: str) -> tuple[bytes, str] | None:
    """A file of ``streams/web/static/`` and its content type, or None (no such file)."""
    match = STATIC_NAME.match(name)
    if match is None:
        return None
    path = resources.files("streams") / "web" / "static" / name
    if not path.is_file():
        return None
    return path.read_bytes(), CONTENT_TYPES["." + match.group(1)]


async def page(ctx: Context, query: Mapping[str, str], *, page: str, **_: str) -> Reply:
    return Reply(shell(page), kind="html", headers=dict(HEADERS))


async def static(ctx: Context, query: Mapping[str, str], name: str) -> Reply:
    found = static_file(name)
    if found is None:
        return Reply({"error": f"no such file: {name}"}, status=404)
    body, content_type = found
    headers = {"Content-Type": content_type, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    return Reply(body, kind="bytes", headers=headers)


def _page(name: str):
    return functools.partial(page, page=name)


ROUTES = [
    Route("/ui/", "ui-search", _page("search")),
    Route("/ui", "ui-search-bare", _page("search")),
    Route("/ui/account/{account_id}", "ui-account", _page("account")),
    *(Route(f"/ui/{name}", f"ui-{name}", _page(name)) for name in ("funnel", "alerts", "attribution")),
    Route("/ui/static/{name}", "ui-static", static),
]
"""The UI's pages and static files, shared by the worker and ``journeys serve``."""


def register(app: faust.App, settings: Settings) -> None:
    """Add the ``/ui/`` pages and their static files; protect the API they call."""
    auth.install(app, settings.api_token)
    add_to_faust(app, ROUTES, Context())
