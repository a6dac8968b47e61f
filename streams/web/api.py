"""Read-only JSON API on the store process (Faust's web server); the CLI uses it when up."""

from __future__ import annotations

import asyncio
from importlib import resources

import faust
from faust.web import Request, Response, View
from faust.web.exceptions import ServiceUnavailable

from sinks.clickhouse import privacy, queries
from sinks.clickhouse.client import QueryLimitExceeded
from streams import reports
from streams.definitions_source import DefinitionsSource
from streams.storehandle import StoreHandle
from streams.web import auth


async def read(handle: StoreHandle, fn, *args):
    """``fn(reader, *args)`` off the loop; a read stopped by its limits
    (``JOURNEYS_API_QUERY_SECONDS`` / ``_MEMORY_MB``) is a 503 ``{"error": …}`` that says which."""
    try:
        return await asyncio.to_thread(fn, handle.reader(), *args)
    except QueryLimitExceeded as exc:
        raise ServiceUnavailable(str(exc)) from exc


def register(app: faust.App, handle: StoreHandle, definitions: DefinitionsSource | None = None) -> None:
    auth.install(app)  # bearer token (JOURNEYS_API_TOKEN) on /api/, read-only /api/ and /ui/

    async def run(fn, *args):
        return await read(handle, fn, *args)

    def limit_of(request: Request, default: int = 1000) -> int:
        raw = request.query.get("limit", str(default))
        if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
            raise ValueError("limit must be an integer between 1 and 100000")
        return int(raw)

    @app.page("/api/v1/timeline/{account_id}")
    class TimelineView(View):
        async def get(self, request: Request, account_id: str) -> Response:
            try:
                limit = limit_of(request)
            except ValueError as exc:
                return self.json({"error": str(exc)}, status=400)
            cols, rows = await run(queries.timeline, account_id, limit)
            return self.json({"account_id": account_id, "events": queries.records(cols, rows)})

    @app.page("/api/v1/accounts")
    class AccountsView(View):
        async def get(self, request: Request) -> Response:
            cols, rows = await run(queries.accounts, 100)
            return self.json({"accounts": queries.records(cols, rows)})

    @app.page("/api/v1/dead-letters")
    class DeadLettersView(View):
        async def get(self, request: Request) -> Response:
            cols, rows = await run(queries.dead_letters, 100)
            return self.json({"dead_letters": queries.records(cols, rows)})

    @app.page("/api/v1/reports/{name}")
    class ReportView(View):
        async def get(self, request: Request, name: str) -> Response:
            if definitions is None:
                return self.json({"error": "no definitions loaded"}, status=503)
            params = dict(request.query)
            try:
                records = await run(lambda reader: reports.run(name, reader, definitions.current, params))
            except ValueError as exc:
                return self.json({"error": str(exc)}, status=400)
            return self.json({"report": name, "params": params, "rows": records})

    @app.page("/api/v1/privacy/requests")
    class PrivacyRequestsView(View):
        async def get(self, request: Request) -> Response:
            """The audit of privacy requests (no identifier: its hash), newest first; ``?id=`` one request."""
            request_id = request.query.get("id") or None
            if request_id is not None and len(request_id) > 64:
                return self.json({"error": "id is longer than 64 characters"}, status=400)
            cols, rows = await run(privacy.requests, request_id)
            return self.json({"requests": queries.records(cols, rows)})

    @app.page("/api/v1/stats")
    class StatsView(View):
        async def get(self, request: Request) -> Response:
            return self.json(await run(queries.stats))

    @app.page("/api/v1/openapi.json")
    class OpenAPIView(View):
        async def get(self, request: Request) -> Response:
            spec = (resources.files("streams") / "web" / "openapi.json").read_bytes()
            return self.bytes(spec, content_type="application/json")
