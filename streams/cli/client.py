"""Answer a query through the running store process's API if it is up, directly otherwise.

With the embedded store (chDB) only the store process may open the data path, so when a worker
is running the CLI must ask it; when none is running the CLI opens the store itself.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Callable
from urllib.parse import quote

import click

from sinks.clickhouse import privacy, queries
from sinks.clickhouse.client import Store, is_embedded
from streams.settings import Settings
from streams.storehandle import StoreHandle


def api_get(settings: Settings, path: str, timeout: float = 10.0) -> dict[str, Any] | None:
    """GET from the running store process (with the API token if set), or None when nothing
    listens there."""
    headers = {}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    request = urllib.request.Request(settings.api_url.rstrip("/") + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise click.ClickException(
                f"the tracker at {settings.api_url} refused the API token: set JOURNEYS_API_TOKEN") from exc
        raise
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def direct(settings: Settings, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(store, *args)`` on a read-only view of the store opened by this process."""
    handle = StoreHandle(settings.store_url, reader_url=settings.reader_url)
    try:
        if not settings.reader_url:
            handle.get()  # an embedded store opened for the first time gets its schema
        return fn(handle.reader(), *args)
    finally:
        handle.close()


def timeline_page(settings: Settings, account_id: str, limit: int,
                  after: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the account's journey and the cursor of the next one (None: no more)."""
    if after:
        queries.parse_cursor(after)  # a bad cursor fails here, with its reason
    if is_embedded(settings.store_url):
        path = f"/api/v1/timeline/{quote(account_id, safe='')}?limit={limit}"
        body = api_get(settings, path + (f"&after={quote(after, safe='')}" if after else ""))
        if body is not None:
            return body["events"], body.get("next")
    cols, rows, after_last = direct(settings, queries.timeline_page, account_id, limit, after)
    return queries.records(cols, rows), after_last


def timeline(settings: Settings, account_id: str, limit: int) -> list[dict[str, Any]]:
    return timeline_page(settings, account_id, limit)[0]


def accounts(settings: Settings) -> list[dict[str, Any]]:
    if is_embedded(settings.store_url):
        body = api_get(settings, "/api/v1/accounts")
        if body is not None:
            return body["accounts"]
    cols, rows = direct(settings, queries.accounts, 100)
    return queries.records(cols, rows)


def dead_letters(settings: Settings) -> list[dict[str, Any]]:
    if is_embedded(settings.store_url):
        body = api_get(settings, "/api/v1/dead-letters")
        if body is not None:
            return body["dead_letters"]
    cols, rows = direct(settings, queries.dead_letters, 100)
    return queries.records(cols, rows)


def stats(settings: Settings) -> dict[str, int] | None:
    if is_embedded(settings.store_url):
        return api_get(settings, "/api/v1/stats", timeout=5)
    return direct(settings, queries.stats)


__all__ = ["Store", "timeline", "accounts", "dead_letters", "stats"]


def report(settings: Settings, name: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """A named report (streams/reports.py) through the API when a store process runs."""
    from urllib.parse import urlencode

    from schemas.definitions import load
    from streams import reports

    if is_embedded(settings.store_url):
        try:
            body = api_get(settings, f"/api/v1/reports/{quote(name)}?{urlencode(params)}", timeout=60)
        except urllib.error.HTTPError as exc:
            raise ValueError(json.loads(exc.read()).get("error", str(exc))) from exc
        if body is not None:
            return body["rows"]
    return direct(settings, lambda store: reports.run(name, store, load(settings.definitions), params))


def privacy_requests(settings: Settings, request_id: str | None = None) -> list[dict[str, Any]]:
    """The audit rows of privacy requests (one request's with ``request_id``), newest first."""
    if is_embedded(settings.store_url):
        body = api_get(settings, "/api/v1/privacy/requests" + (f"?id={quote(request_id)}" if request_id else ""))
        if body is not None:
            return body["requests"]
    cols, rows = direct(settings, privacy.requests, request_id)
    return queries.records(cols, rows)
