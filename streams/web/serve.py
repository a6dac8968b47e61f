"""``journeys serve``: the JSON API and the web UI without a stream worker (issue #21).

A plain aiohttp server — no Faust app running, no Kafka connection — serving the same
``/api/v1/…`` endpoints and ``/ui/…`` pages as the store process (the handlers are shared:
:mod:`streams.web.routes`), behind the same bearer-token/read-only middleware
(:mod:`streams.web.auth`) and the same start-up rule (:mod:`streams.exposure`: beyond loopback a
token is required). It only reads: through ``JOURNEYS_READER_CLICKHOUSE_URL`` if set, else
``JOURNEYS_CLICKHOUSE_URL`` (a ClickHouse server: never migrated from here), or the embedded
store's path — which only one process may open, so ``serve`` refuses when a worker (or another
``serve``) answers at ``JOURNEYS_API_URL``. ``/metrics`` (no token, as on a worker) has the
request counts and times of the API and the UI, glibc's heap and the process's CPU, memory and
open files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Mapping

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from sinks.clickhouse.client import ReadOnlyStore, Store, is_embedded, read_limits, redact
from streams import malloc, metrics
from streams.definitions_source import DefinitionsSource
from streams.settings import Settings
from streams.storehandle import StoreHandle
from streams.web import api, auth, ui
from streams.web.routes import Context, Reply, Route, add_to_aiohttp

log = logging.getLogger(__name__)

READY_QUERY_TIMEOUT = 5.0


class ReaderHandle:
    """The store for ``serve``: read-only, opened once (``reader()`` like a :class:`StoreHandle`).

    With a ClickHouse server the reader connects without migrating (an analyst's machine never
    changes the schema); the embedded store is opened (and, on first use only, given its schema)
    like the CLI does when no worker runs."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.store_url
        self.limits = read_limits(settings.api_query_seconds, settings.api_query_memory_mb,
                                settings.api_query_rows)
        self._embedded: StoreHandle | None = None
        self._server: Store | None = None
        if is_embedded(self.url):
            self._embedded = StoreHandle(self.url, read_limits=self.limits)
        else:
            self._server = Store(settings.reader_url or self.url)

    def open(self) -> None:
        if self._embedded is not None:
            self._embedded.get()

    def reader(self) -> ReadOnlyStore:
        if self._embedded is not None:
            return self._embedded.reader()
        assert self._server is not None
        return ReadOnlyStore(self._server, self.limits)

    def close(self) -> None:
        if self._embedded is not None:
            self._embedded.close()
        if self._server is not None:
            self._server.close()


async def live(ctx: Context, query: Mapping[str, str]) -> Reply:
    return Reply({"live": True})


async def ready(ctx: Context, query: Mapping[str, str]) -> Reply:
    problems = []
    try:
        await asyncio.wait_for(asyncio.to_thread(lambda: ctx.handle.reader().query("SELECT 1")), READY_QUERY_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure: not ready, say which
        problems.append(f"clickhouse: {type(exc).__name__}: {str(exc)[:200]}")
    return Reply({"ready": not problems, "not_ready": problems, "roles": "serve"}, status=200 if not problems else 503)


async def prometheus(ctx: Context, query: Mapping[str, str]) -> Reply:
    """The Prometheus text format of this process's series (the worker's ``/metrics`` has the same
    API series, plus the stream and store ones a ``serve`` has no part in)."""
    for kind, used in malloc.glibc_usage().items():
        metrics.MALLOC.labels("glibc", kind).set(used)
    return Reply(metrics.render(ctx.tenant), kind="bytes", headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


@api._capped
async def schema(ctx: Context, query: Mapping[str, str]) -> Reply:
    """Applied and pending migrations, as the store worker's ``/api/v1/schema`` (read here, never run)."""
    from sinks.clickhouse import ddl

    _, rows = await api.read(ctx.handle, lambda reader: reader.query(
        "SELECT DISTINCT version FROM schema_migrations ORDER BY version"))
    done = [int(r[0]) for r in rows]
    pending = [m.version for m in ddl.MIGRATIONS if m.version not in set(done)]
    return Reply({"applied": done, "latest": ddl.LATEST, "pending": pending})


OWN = [
    Route("/health/live", "health-live", live),
    Route("/health/ready", "health-ready", ready),
    Route("/api/v1/schema", "api-schema", schema),
    Route("/metrics", "metrics", prometheus),
]

ROUTES = api.ROUTES + ui.ROUTES + OWN
"""Everything ``journeys serve`` answers."""


def build(settings: Settings, handle: Any, definitions: DefinitionsSource | None) -> web.Application:
    """The aiohttp application: the shared routes behind the auth middleware."""
    token = settings.api_token.get_secret_value() if settings.api_token is not None else None
    web_app = web.Application(middlewares=[auth.middleware(token or None)])
    add_to_aiohttp(web_app, ROUTES, Context(handle, definitions, settings.tenant))
    if definitions is not None and settings.definitions_reload_seconds > 0:
        async def reload(app: web.Application):
            async def poll() -> None:
                while True:
                    await asyncio.sleep(settings.definitions_reload_seconds)
                    definitions.poll()

            task = asyncio.create_task(poll())
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        web_app.cleanup_ctx.append(reload)
    return web_app


def held_by_other(settings: Settings) -> bool:
    """Whether a process answers at ``JOURNEYS_API_URL`` (a worker, or another ``serve``): with the
    embedded store that process holds the data path."""
    import urllib.error

    import click

    from streams.cli import client

    try:
        return client.stats(settings) is not None
    except (click.ClickException, urllib.error.HTTPError):  # it answered (a wrong token, an error)
        return True


def run(settings: Settings, handle: ReaderHandle, host: str, port: int) -> None:
    """Serve until interrupted (blocking); closes ``handle`` (opened: :meth:`ReaderHandle.open`) at the end."""
    try:
        definitions = DefinitionsSource(settings.definitions)
        log.info("journeys serve: read-only on %s, http://%s:%d/ui/", redact(settings.store_url), host, port)
        web.run_app(build(settings, handle, definitions), host=host, port=port, print=None,
                    handle_signals=True, access_log=None)
    finally:
        handle.close()
